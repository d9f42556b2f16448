import Duplex
import DuplexCore
import NIOCore
import Testing

/// One end-to-end test per timer over real sockets, with small values: handshake, keepalive
/// ping and pong timeout, idle, close. The connection's time rules themselves (exact deadlines,
/// what moves them, the drop action, ...) are checked with virtual time in DriverTests.
@Suite struct ServerTimeoutTests {
    static let clock = ContinuousClock()

    @Test func handshakeTimeoutClosesASilentConnection() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho())
        try await withServer(router, handshakeTimeout: .seconds(1), group: timerLoop) { port, _ in
            let start = Self.clock.now
            // Connects and sends nothing.
            let silent = try await TestClient.raw(port: port, group: timerLoop)
            // Sends half a request (from the event loop, as soon as it is connected).
            let slow = try await TestClient.raw(port: port, group: timerLoop, sending: "GET /echo HTTP/1.1\r\nHost: x\r\n")
            // A keep-alive HTTP connection gets the same time for its next request.
            let keepAlive = try await TestClient.raw(port: port, group: timerLoop, sending: httpRequest("GET", "/healthz"))
            #expect(try await keepAlive.readResponse().status == 200)
            // A WebSocket that completed its handshake is not affected.
            let ws = try await TestClient.webSocket(port: port, group: timerLoop)

            try await silent.waitForTCPClose(timeout: .seconds(5))
            let elapsed = Self.clock.now - start
            #expect(elapsed >= .milliseconds(950), "closed after \(elapsed)")
            #expect(try await silent.wait("nothing received") { h in h.bytesReceived } == 0)
            try await slow.waitForTCPClose(timeout: .seconds(5))
            try await keepAlive.waitForTCPClose(timeout: .seconds(5))

            try await eventually("the handshake timeout to pass") { Self.clock.now - start > .milliseconds(1300) }
            try await ws.sendText("still open")
            #expect(try await ws.nextMessage() == .text("still open"))
            await ws.close()
        }
    }

    @Test func keepalivePingWithoutPongClosesWith1011() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho(configuration: WebSocketConfiguration(
            pingInterval: .milliseconds(100), pongTimeout: .milliseconds(200)
        )))
        try await withServer(router, group: timerLoop) { port, _ in
            let start = Self.clock.now
            let client = try await TestClient.webSocket(port: port, group: timerLoop, autoPong: false)
            guard case .ping(let payload) = try await client.next(timeout: .seconds(5)) else {
                Issue.record("expected a keepalive ping first")
                return
            }
            #expect(payload.count == 8)  // the server's ping counter
            let close = try await client.nextClose(timeout: .seconds(5))
            let elapsed = Self.clock.now - start
            #expect(close.code == 1011)
            #expect(close.reason == "keepalive ping timeout")
            #expect(elapsed >= .milliseconds(290), "closed after \(elapsed)")  // ping interval + pong timeout
            try await client.waitForTCPClose()
        }
    }

    @Test func idleTimeoutClosesWith1001() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", callbackEcho(configuration: quietConfiguration(idleTimeout: .milliseconds(300))))
        try await withServer(router, group: timerLoop) { port, _ in
            let start = Self.clock.now
            let client = try await TestClient.webSocket(port: port, group: timerLoop)
            let close = try await client.nextClose(timeout: .seconds(5))
            let elapsed = Self.clock.now - start
            #expect(close.code == 1001)
            #expect(close.reason == "idle timeout")
            #expect(elapsed >= .milliseconds(290), "closed after \(elapsed)")
            try await client.waitForTCPClose()
        }
    }

    @Test func closeTimeoutDropsAPeerThatNeverAnswersTheClose() async throws {
        var router = WebSocketRouter()
        router.webSocket("/close", WebSocketEndpoint(configuration: quietConfiguration(closeTimeout: .milliseconds(300)),
                                                     callbacks: WebSocketCallbacks(
            onMessage: { ws, _ in try? ws.close(code: CloseCode(4000), reason: "go") }
        )))
        try await withServer(router, group: timerLoop) { port, _ in
            let client = try await TestClient.webSocket(port: port, group: timerLoop, path: "/close", autoCloseReply: false)
            let start = Self.clock.now
            try await client.sendText("close me")
            let close = try await client.nextClose()
            #expect(close.code == 4000)
            try await client.waitForTCPClose(timeout: .seconds(5))
            let elapsed = Self.clock.now - start
            #expect(elapsed >= .milliseconds(250), "closed after \(elapsed)")
        }
    }
}
