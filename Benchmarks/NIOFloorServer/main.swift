// The memory floor of any NIO-based WebSocket server, for Benchmarks/run-load.sh (W4 floor): a
// ServerBootstrap with the same options as the echo servers, whose child channels get one tiny
// handler that answers the first read (the client's upgrade request, one segment on loopback) with
// a canned `HTTP/1.1 101 Switching Protocols` response and then removes itself. From then on the
// pipeline holds nothing but what NIO's channel itself has (head and tail): whatever the client
// sends is read and dropped by the tail. There is no WebSocket framing, no ping, no close: an idle
// connection costs the server exactly NIO's socket channel. Benchmark-only.
//
// NIO keeps each channel's receive buffer for its next read (NIOPooledRecvBufferAllocator; 2 KiB at
// first with the default AdaptiveRecvByteBufferAllocator): `--recv-buffer B` makes the first one B
// bytes (a power of two, at least 64), to see what the channel costs without it.
//
// Usage: nio-floor-server [--host 127.0.0.1] [--port 8084] [--threads 1] [--recv-buffer 2048]

import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class CannedUpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The answer to every request: a valid 101 for the Sec-WebSocket-Key that wsload sends
    /// (`dGhlIHNhbXBsZSBub25jZQ==`); wsload does not check the accept value anyway. One buffer shared
    /// by every connection (a write does not copy it).
    static let cannedResponse = ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\n"
        + "Upgrade: websocket\r\n"
        + "Connection: Upgrade\r\n"
        + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        + "\r\n")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(Self.wrapOutboundOut(Self.cannedResponse), promise: nil)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// Writes a line to standard error (without the C `stderr` global, which strict concurrency refuses).
func printError(_ line: String) {
    var line = line + "\n"
    line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

struct Options {
    var host = "127.0.0.1"
    var port = 8084
    var threads = 1
    var recvBuffer: Int? = nil

    init(arguments: [String]) {
        var it = arguments.makeIterator()
        while let arg = it.next() {
            func number() -> Int {
                guard let v = it.next(), let n = Int(v), n > 0 else { Self.usage("bad or missing value for \(arg)") }
                return n
            }
            switch arg {
            case "--host":
                guard let v = it.next() else { Self.usage("missing value for \(arg)") }
                host = v
            case "--port": port = number()
            case "--threads": threads = number()
            case "--recv-buffer": recvBuffer = max(64, number())
            case "-h", "--help": Self.usage(nil)
            default: Self.usage("unknown argument \(arg)")
            }
        }
    }

    static func usage(_ error: String?) -> Never {
        if let error { printError("nio-floor-server: \(error)") }
        printError("usage: nio-floor-server [--host 127.0.0.1] [--port 8084] [--threads 1] [--recv-buffer 2048]")
        exit(error == nil ? 0 : 2)
    }
}

let options = Options(arguments: Array(CommandLine.arguments.dropFirst()))
let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)

var bootstrap = ServerBootstrap(group: group)
if let recvBuffer = options.recvBuffer {
    bootstrap = bootstrap.childChannelOption(
        .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: recvBuffer, maximum: max(recvBuffer, 65536))
    )
}
let channel = try bootstrap
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(CannedUpgradeHandler())
        }
    }
    .bind(host: options.host, port: options.port).wait()
let port = channel.localAddress?.port ?? options.port
print("nio-floor-server: canned 101 at ws://\(options.host):\(port)/ (\(options.threads) event loop(s))")
fflush(nil)
try channel.closeFuture.wait()
