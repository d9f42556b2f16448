import Duplex
import DuplexCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// The server's HTTP/2 (RFC 8441) against an independent client: Python's `h2` with `wsproto`
/// (Tests/Interop/h2_websocket_check.py; scripts/interop-venv.sh makes the venv), over TLS with
/// ALPN and over h2c with prior knowledge. Serialized: each run is a CPU-heavy Python process.
@Suite(.serialized) struct HTTP2InteropTests {
    /// A loop of their own for these servers (100 streams and a 1 MiB message in debug builds).
    static let loops: MultiThreadedEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// The router the script expects: /echo (with permessage-deflate), /big (1 MiB, 16 KiB fragments),
    /// POST /shutdown.
    static func router(server: NIOLockedValueBox<WebSocketServer?>) -> WebSocketRouter {
        var router = WebSocketRouter()
        router.webSocket("/echo", WebSocketEndpoint(configuration: quietConfiguration(),
                                                    extensions: [PerMessageDeflate.ServerNegotiator()],
                                                    callbacks: WebSocketCallbacks(onMessage: { ws, data in ws.send(data) })))
        var fragmented = quietConfiguration()
        fragmented.fragmentSize = 16 * 1024
        router.webSocket("/big", WebSocketEndpoint(configuration: fragmented, callbacks: WebSocketCallbacks(onMessage: { ws, _ in
            ws.send(.binary(ByteBuffer(bytes: patternBytes(1 << 20, seed: 3))))
        })))
        router.post("/shutdown") { _ in
            let running = server.withLockedValue { $0 }
            Task { await running?.shutdown(gracePeriod: .seconds(5)) }
            return .text("shutting down\n")
        }
        return router
    }

    static func run(mode: String, tls: TLSConfiguration?, streams: Int = 100) async throws {
        let python = try await ServerInteropTests.interopPython()
        let box = NIOLockedValueBox<WebSocketServer?>(nil)
        var configuration = WebSocketServer.Configuration(host: "127.0.0.1", port: 0, tls: tls, webSocket: quietConfiguration())
        configuration.http2.priorKnowledgeCleartext = tls == nil
        let server = WebSocketServer(configuration: configuration, router: router(server: box), group: Self.loops, logger: testLogger())
        box.withLockedValue { $0 = server }
        let port = try #require(try await server.start().port)
        let script = repositoryRoot.appendingPathComponent("Tests/Interop/h2_websocket_check.py").path
        let (status, output) = try await runProcess(python, [script, mode, "127.0.0.1", "\(port)", "\(streams)"])
        await server.shutdown(gracePeriod: .milliseconds(100))
        #expect(status == 0, "\(output)")
        #expect(output.contains("RESULT: OK"), "\(output)")
        // Every WebSocket of the script went over its one TCP connection, as HTTP/2 streams.
        #expect(server.acceptedConnectionCount == 1)
        #expect(server.http2ConnectionCount == 1)
        #expect(server.webSocketsOpened(over: .h2) == streams + 2)  // + the deflate one and /big
        #expect(server.webSocketsOpened(over: .http1) == 0)
    }

    @Test func pythonH2OverTLS() async throws {
        let (directory, certificate, key) = try await ServerTLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Self.run(mode: "tls", tls: try TLSConfiguration.duplexServer(certificatePath: certificate, privateKeyPath: key))
    }

    @Test func pythonH2CleartextPriorKnowledge() async throws {
        try await Self.run(mode: "h2c", tls: nil)
    }

    /// Runs the script in `mode` against an h2c server without endpoints, configured by `configure`.
    static func runWithoutEndpoints(mode: String, configure: (inout HTTP2ServerConfiguration) -> Void) async throws -> String {
        let python = try await ServerInteropTests.interopPython()
        var configuration = WebSocketServer.Configuration(host: "127.0.0.1", port: 0)
        configuration.http2.priorKnowledgeCleartext = true
        configure(&configuration.http2)
        let server = WebSocketServer(configuration: configuration, router: WebSocketRouter(), group: Self.loops, logger: testLogger())
        let port = try #require(try await server.start().port)
        let script = repositoryRoot.appendingPathComponent("Tests/Interop/h2_websocket_check.py").path
        let (status, output) = try await runProcess(python, [script, mode, "127.0.0.1", "\(port)"])
        await server.shutdown(gracePeriod: .milliseconds(100))
        #expect(status == 0, "\(output)")
        #expect(output.contains("RESULT: OK"), "\(output)")
        return output
    }

    /// Without WebSocket endpoints the server does not promise extended CONNECT (RFC 8441 §3).
    @Test func noConnectProtocolSettingWithoutEndpoints() async throws {
        let output = try await Self.runWithoutEndpoints(mode: "settings-only-h2c") { _ in }
        #expect(output.contains("ok: no SETTINGS_ENABLE_CONNECT_PROTOCOL"), "\(output)")
    }

    /// A connection without streams is closed after the idle timeout, with a GOAWAY first.
    @Test func idleConnectionGetsGoAwayAndIsClosed() async throws {
        let output = try await Self.runWithoutEndpoints(mode: "idle-h2c") { $0.idleConnectionTimeout = .milliseconds(300) }
        #expect(output.contains("ok: idle connection: GOAWAY"), "\(output)")
    }
}
