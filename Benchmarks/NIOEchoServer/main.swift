// A WebSocket echo server on SwiftNIO's NIOWebSocket, the peer of `duplex serve`'s /echo in
// Benchmarks/run-load.sh. Written the way NIO's own NIOWebSocketServer example sets up its
// pipeline (HTTPServerUpgradeHandler with a NIOWebSocketServerUpgrader, which adds
// WebSocketFrameDecoder/Encoder), with the echo in a ChannelInboundHandler on the event loop:
// text/binary frames are echoed unmasked, pings answered, closes echoed. Writes are flushed once
// per read batch. Benchmark-only: no TLS, no limits beyond the frame size.
//
// Usage: nio-echo-server [--host 127.0.0.1] [--port 8081] [--threads 1] [--max-frame-size 1048576]

import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Echoes every data frame back (fin and opcode kept, payload unmasked), answers pings, echoes
/// the close code and closes.
final class WebSocketEchoHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private var awaitingClose = false
    private var needsFlush = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text, .binary, .continuation:
            let echo = WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData)
            context.write(Self.wrapOutboundOut(echo), promise: nil)
            needsFlush = true
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.write(Self.wrapOutboundOut(pong), promise: nil)
            needsFlush = true
        case .connectionClose:
            receivedClose(context: context, frame: frame)
        case .pong:
            break
        default:
            closeOnError(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    private func receivedClose(context: ChannelHandlerContext, frame: WebSocketFrame) {
        if awaitingClose {
            context.close(promise: nil)
            return
        }
        var data = frame.unmaskedData
        let code = data.readSlice(length: 2) ?? ByteBuffer()
        let close = WebSocketFrame(fin: true, opcode: .connectionClose, data: code)
        context.writeAndFlush(Self.wrapOutboundOut(close)).whenComplete { _ in
            context.close(promise: nil)
        }
    }

    private func closeOnError(context: ChannelHandlerContext) {
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: .protocolError)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        context.writeAndFlush(Self.wrapOutboundOut(frame)).whenComplete { _ in
            context.close(mode: .output, promise: nil)
        }
        awaitingClose = true
    }
}

/// Plain HTTP requests get a 404: only the upgrade is served.
final class NotFoundHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = Self.unwrapInboundIn(data) else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: "0")
        headers.add(name: "Connection", value: "close")
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .notFound, headers: headers))),
                      promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }
}

struct Options {
    var host = "127.0.0.1"
    var port = 8081
    var threads = 1
    var maxFrameSize = 1 << 20

    init(arguments: [String]) {
        var it = arguments.makeIterator()
        while let arg = it.next() {
            func value() -> String {
                guard let v = it.next() else { Self.usage("missing value for \(arg)") }
                return v
            }
            func number() -> Int {
                guard let n = Int(value()), n > 0 else { Self.usage("bad value for \(arg)") }
                return n
            }
            switch arg {
            case "--host": host = value()
            case "--port": port = number()
            case "--threads": threads = number()
            case "--max-frame-size": maxFrameSize = number()
            case "-h", "--help": Self.usage(nil)
            default: Self.usage("unknown argument \(arg)")
            }
        }
    }

    static func usage(_ error: String?) -> Never {
        var standardError = StandardError()
        if let error { print("nio-echo-server: \(error)", to: &standardError) }
        print("usage: nio-echo-server [--host 127.0.0.1] [--port 8081] [--threads 1] [--max-frame-size 1048576]",
              to: &standardError)
        exit(error == nil ? 0 : 2)
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var string = string
        #if canImport(Glibc)
        string.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
        #else
        string.withUTF8 { bytes in _ = Darwin.write(2, bytes.baseAddress, bytes.count) }
        #endif
    }
}

let options = Options(arguments: Array(CommandLine.arguments.dropFirst()))
let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
let maxFrameSize = options.maxFrameSize

let upgrader = NIOWebSocketServerUpgrader(
    maxFrameSize: maxFrameSize,
    shouldUpgrade: { channel, head in
        channel.eventLoop.makeSucceededFuture(head.uri.hasPrefix("/echo") ? HTTPHeaders() : nil)
    },
    upgradePipelineHandler: { channel, _ in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(WebSocketEchoHandler())
        }
    }
)

let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelInitializer { channel in
        let notFound = NotFoundHandler()
        let config: NIOHTTPServerUpgradeSendableConfiguration = (
            upgraders: [upgrader],
            completionHandler: { channel in
                channel.pipeline.removeHandler(notFound, promise: nil)
            }
        )
        return channel.pipeline.configureHTTPServerPipeline(withServerUpgrade: config).flatMap {
            channel.pipeline.addHandler(notFound)
        }
    }

let channel = try bootstrap.bind(host: options.host, port: options.port).wait()
let port = channel.localAddress?.port ?? options.port
print("nio-echo-server: echo endpoint ws://\(options.host):\(port)/echo (\(options.threads) event loop(s))")
fflush(nil)  // all streams: the URL must show at once in a pipe too
try channel.closeFuture.wait()
