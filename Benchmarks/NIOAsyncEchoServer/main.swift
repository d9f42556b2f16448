// A WebSocket echo server in SwiftNIO's own async idiom, the peer of Duplex's async API in
// Benchmarks/run-load.sh. Set up the way NIO's NIOWebSocketServer example does it: ServerBootstrap's
// async `bind` with `configureUpgradableHTTPServerPipeline` and a `NIOTypedWebSocketServerUpgrader`
// (which adds WebSocketFrameDecoder/Encoder and the protocol error handler), each upgraded connection
// wrapped in a `NIOAsyncChannel<WebSocketFrame, WebSocketFrame>` and served by a child task of a
// discarding task group: `for try await frame in inbound { try await outbound.write(echo) }`.
// Data frames are echoed frame by frame (fin and opcode kept, payload unmasked), so fragmented
// messages come back fragmented, as in Benchmarks/NIOEchoServer; pings are answered, a close is
// answered with the peer's code and the connection closed. Every path upgrades; a request that is
// not an upgrade is closed. Benchmark-only: no TLS, no limits beyond the frame size.
//
// Usage: nio-async-echo-server [--host 127.0.0.1] [--port 8082] [--threads 1] [--max-frame-size 1048576]

import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum UpgradeResult {
    case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
    case notUpgraded
}

/// Echoes data frames, answers pings, answers a close and returns (which closes the channel).
func serveWebSocket(_ channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>) async throws {
    try await channel.executeThenClose { inbound, outbound in
        for try await frame in inbound {
            switch frame.opcode {
            case .text, .binary, .continuation:
                try await outbound.write(WebSocketFrame(fin: frame.fin, opcode: frame.opcode, data: frame.unmaskedData))
            case .ping:
                try await outbound.write(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
            case .connectionClose:
                var data = frame.unmaskedData
                let code = data.readSlice(length: 2) ?? ByteBuffer()
                try await outbound.write(WebSocketFrame(fin: true, opcode: .connectionClose, data: code))
                return
            case .pong:
                break
            default:
                var data = ByteBuffer()
                data.write(webSocketErrorCode: .protocolError)
                try await outbound.write(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))
                return
            }
        }
    }
}

/// Writes a line to standard error (without the C `stderr` global, which strict concurrency refuses).
func printError(_ line: String) {
    var line = line + "\n"
    line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

struct Options {
    var host = "127.0.0.1"
    var port = 8082
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
        if let error { printError("nio-async-echo-server: \(error)") }
        printError("usage: nio-async-echo-server [--host 127.0.0.1] [--port 8082] [--threads 1] [--max-frame-size 1048576]")
        exit(error == nil ? 0 : 2)
    }
}

let options = Options(arguments: Array(CommandLine.arguments.dropFirst()))
let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
let maxFrameSize = options.maxFrameSize

let server: NIOAsyncChannel<EventLoopFuture<UpgradeResult>, Never> = try await ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .bind(host: options.host, port: options.port) { channel in
        channel.eventLoop.makeCompletedFuture {
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: maxFrameSize,
                shouldUpgrade: { channel, _ in
                    channel.eventLoop.makeSucceededFuture(HTTPHeaders())
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        let asyncChannel = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(
                            wrappingChannelSynchronously: channel
                        )
                        return UpgradeResult.websocket(asyncChannel)
                    }
                }
            )
            let configuration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.close().map { UpgradeResult.notUpgraded }
                }
            )
            return try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(
                configuration: .init(upgradeConfiguration: configuration)
            )
        }
    }

let port = server.channel.localAddress?.port ?? options.port
print("nio-async-echo-server: echo endpoint ws://\(options.host):\(port)/ (\(options.threads) event loop(s))")
fflush(nil)  // all streams: the URL must show at once in a pipe too

try await withThrowingDiscardingTaskGroup { tasks in
    try await server.executeThenClose { inbound in
        for try await upgrade in inbound {
            tasks.addTask {
                do {
                    if case .websocket(let channel) = try await upgrade.get() {
                        try await serveWebSocket(channel)
                    }
                } catch {
                    // One connection's failure (reset, protocol error) must not end the server.
                }
            }
        }
    }
}
