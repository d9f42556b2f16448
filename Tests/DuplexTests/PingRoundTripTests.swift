import Duplex
import DuplexCore
import NIOCore
import Testing

/// `WebSocketConnection.ping` waits for the pong that carries its payload and returns the round trip.
@Suite struct PingRoundTripTests {
    @Test func aPingReturnsItsRoundTripFromEitherSide() async throws {
        let serverRoundTrips = Mailbox<Duration>()
        var router = WebSocketRouter()
        router.webSocket("/echo", WebSocketEndpoint(configuration: quietConfiguration()) { ws in
            serverRoundTrips.put(try await ws.ping())
            for try await message in ws.messages { try await ws.send(message) }
        })
        try await withServer(router) { port, _ in
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", group: testLoop, logger: testLogger())
            let first = try await ws.ping(ByteBuffer(string: "one"))
            // Several at once, each matched to its own payload.
            async let a = ws.ping(ByteBuffer(string: "a"))
            async let b = ws.ping(ByteBuffer(string: "b"))
            let both = try await [a, b]
            for roundTrip in [first] + both {
                #expect(roundTrip > .zero && roundTrip < .seconds(5))
            }
            let server = try await serverRoundTrips.take()
            #expect(server > .zero && server < .seconds(5))
            _ = try await ws.close()
            await #expect(throws: WebSocketError.self) { try await ws.ping() }
        }
    }

    @Test func aPingWithoutPongFailsAtThePongTimeout() async throws {
        var router = WebSocketRouter()
        // This server does not answer pings.
        router.webSocket("/silent", callbackEcho(configuration: WebSocketConfiguration(autoPong: false, pingInterval: nil)))
        try await withServer(router) { port, _ in
            let configuration = WebSocketClientConfiguration(webSocket: WebSocketConfiguration(pingInterval: nil, pongTimeout: .milliseconds(200)))
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/silent", configuration: configuration,
                                                 group: testLoop, logger: testLogger())
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: WebSocketError.pingTimeout) { try await ws.ping(ByteBuffer(string: "anyone?")) }
            #expect(clock.now - start >= .milliseconds(190))
            // A payload already waiting is refused.
            async let waiting: Duration? = try? ws.ping(ByteBuffer(string: "dup"))
            try await Task.sleep(for: .milliseconds(20))
            await #expect(throws: WebSocketError.self) { try await ws.ping(ByteBuffer(string: "dup")) }
            _ = await waiting
            _ = try await ws.close()
        }
    }
}
