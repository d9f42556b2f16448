import Duplex
import DuplexCore
import NIOCore
import Testing

/// Every timer with small values: handshake, keepalive ping, idle, close.
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

    static func keepaliveRouter() -> WebSocketRouter {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho(configuration: WebSocketConfiguration(
            pingInterval: .milliseconds(100), pongTimeout: .milliseconds(500)
        )))
        return router
    }

    @Test func keepalivePingWithoutPongClosesWith1011() async throws {
        try await withServer(Self.keepaliveRouter(), group: timerLoop) { port, _ in
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
            #expect(elapsed >= .milliseconds(590), "closed after \(elapsed)")  // ping interval + pong timeout
            try await client.waitForTCPClose()
        }
    }

    @Test func keepalivePingWithPongsStaysOpen() async throws {
        try await withServer(Self.keepaliveRouter(), group: timerLoop) { port, _ in
            let client = try await TestClient.webSocket(port: port, group: timerLoop, autoPong: true)
            // Several rounds of ping interval + pong timeout.
            _ = try await client.wait("four keepalive pings", timeout: .seconds(10)) { h in
                h.pingsReceived >= 4 ? true : nil
            }
            #expect(try await client.isClosed == false)
            try await client.sendText("alive")
            #expect(try await client.nextMessage() == .text("alive"))
            await client.close()
        }
    }

    @Test func pongTimeoutDropActionClosesTheTCPConnection() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho(configuration: WebSocketConfiguration(
            pingInterval: .milliseconds(100), pongTimeout: .milliseconds(150), pongTimeoutAction: .drop
        )))
        try await withServer(router, group: timerLoop) { port, _ in
            let client = try await TestClient.webSocket(port: port, group: timerLoop, autoPong: false)
            try await client.waitForTCPClose(timeout: .seconds(5))
            let events = try await client.wait("events") { h in Array(h.events) }
            #expect(events.contains { if case .ping = $0 { true } else { false } })
            #expect(!events.contains { if case .close = $0 { true } else { false } })
        }
    }

    @Test func idleTimeoutClosesWith1001() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", callbackEcho(configuration: quietConfiguration(idleTimeout: .milliseconds(600))))
        try await withServer(router, group: timerLoop) { port, _ in
            // Traffic every 100 ms, sent from the client's event loop from the moment the
            // connection is open, keeps it open past the timeout.
            let start = Self.clock.now
            let client = try await TestClient.webSocket(port: port, group: timerLoop,
                                                        tickingOnOpen: (.milliseconds(100), "tick"))
            try await Task.sleep(for: .milliseconds(1300))
            try await client.stopTicking()
            let stopped = Self.clock.now
            // Every tick was echoed: none reached the server after it closed (it echoes on the
            // event loop, so the echoes and its close frame arrive in order).
            let (echoes, ticks) = try await client.wait("the echoes or a close") { h -> (Int, Int)? in
                let echoes = h.events.filter { $0 == .text("tick") }.count
                let closed = h.events.contains { if case .close = $0 { true } else { false } }
                return echoes == h.ticksSent || closed ? (echoes, h.ticksSent) : nil
            }
            #expect(echoes == ticks, "closed while ticking: \(echoes) echoes of \(ticks) ticks")
            #expect(ticks >= 6, "\(ticks) ticks in \(stopped - start)")
            // Then silence: the close comes at least the timeout after the last message.
            let close = try await client.nextClose(skippingData: true, timeout: .seconds(5))
            #expect(close.code == 1001)
            #expect(close.reason == "idle timeout")
            let (lastTick, closeArrived) = try await client.wait("the timestamps") { h in
                h.lastTick.flatMap { tick in h.closeArrived.map { (tick, $0) } }
            }
            #expect(closeArrived - lastTick >= .milliseconds(590), "closed \(closeArrived - lastTick) after the last message")
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
