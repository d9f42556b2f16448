// h2-bench: N WebSockets to a `duplex serve --tls-cert/--tls-key` server, either as streams of one
// HTTP/2 connection (RFC 8441, --transport h2) or over their own TLS connections (--transport http1),
// through Duplex's public client API (wsload, the C load generator, speaks no HTTP/2).
//
//   1. idle: opens N WebSockets, prints `opened N`, waits --hold seconds (the caller reads the
//      server's RSS meanwhile), and
//   2. echo: each WebSocket sends a --size byte message and sends the next when its echo arrives
//      (closed loop, one in flight per WebSocket) for --duration seconds; prints messages/s.
//
// Usage: h2-bench --url wss://127.0.0.1:9443/echo --transport h2|http1 [--connections 100]
//                 [--size 16] [--duration 10] [--hold 3]
// Benchmark-only; the certificate is not verified.

import Duplex
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif


struct Options {
    var url = "wss://127.0.0.1:9443/echo"
    var http2 = true
    var connections = 100
    var size = 16
    var duration = 10.0
    var hold = 3.0

    init(arguments: [String]) {
        var it = arguments.makeIterator()
        while let argument = it.next() {
            let value = it.next() ?? ""
            switch argument {
            case "--url": url = value
            case "--transport": http2 = value == "h2"
            case "--connections": connections = Int(value) ?? connections
            case "--size": size = Int(value) ?? size
            case "--duration": duration = Double(value) ?? duration
            case "--hold": hold = Double(value) ?? hold
            default: fatalError("unknown option \(argument)")
            }
        }
    }
}

let options = Options(arguments: Array(CommandLine.arguments.dropFirst()))
var configuration = WebSocketClientConfiguration(extensions: [], handshakeTimeout: .seconds(30), tls: .insecure, proxy: .none)
configuration.webSocket.pingInterval = nil
configuration.http2 = options.http2 ? .preferred : .never
let counted = NIOLockedValueBox(0)
let running = NIOLockedValueBox(false)
let payload = ByteBuffer(repeating: 0x61, count: options.size)

let callbacks = WebSocketCallbacks(onMessage: { ws, _ in
    guard running.withLockedValue({ $0 }) else { return }
    counted.withLockedValue { $0 += 1 }
    ws.send(.binary(payload))
})
let group = MultiThreadedEventLoopGroup.singleton
var sockets: [WebSocketConnection] = []
let started = NIODeadline.now()
try await withThrowingTaskGroup(of: WebSocketConnection.self) { tasks in
    var pending = 0
    for _ in 0..<options.connections {
        if pending >= 50 { sockets.append(try await tasks.next()!); pending -= 1 }
        tasks.addTask { try await WebSocketConnection.connect(to: options.url, configuration: configuration, callbacks: callbacks, group: group) }
        pending += 1
    }
    for try await ws in tasks { sockets.append(ws) }
}
let setup = Double((NIODeadline.now() - started).nanoseconds) / 1e9
print("opened \(sockets.count) in \((setup * 100).rounded() / 100) s")
fflush(nil)
try await Task.sleep(nanoseconds: UInt64(options.hold * 1e9))

running.withLockedValue { $0 = true }
for ws in sockets { try await ws.send(binary: payload) }
try await Task.sleep(nanoseconds: 1_000_000_000)  // warm-up
counted.withLockedValue { $0 = 0 }
try await Task.sleep(nanoseconds: UInt64(options.duration * 1e9))
let messages = counted.withLockedValue { $0 }
running.withLockedValue { $0 = false }
print("echo: \(Int(Double(messages) / options.duration)) messages/s over \(sockets.count) WebSockets (\(options.http2 ? "h2 streams" : "HTTP/1.1 each"))")
for ws in sockets { _ = try? await ws.close() }
