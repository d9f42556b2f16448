import Duplex
import DuplexCore
import NIOCore
import NIOPosix
import Testing

/// Graceful shutdown: 1001 to every WebSocket, wait for them, refuse new connections.
@Suite struct ServerShutdownTests {
    static let clock = ContinuousClock()

    static func startServer(closes: Mailbox<CloseFrame?>) async throws -> (WebSocketServer, Int) {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho(configuration: quietConfiguration(), closes: closes))
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0), router: router, logger: testLogger())
        let address = try await server.start()
        return (server, try #require(address.port))
    }

    @Test func shutdownSendsGoingAwayToEveryClientAndRefusesNewConnections() async throws {
        let closes = Mailbox<CloseFrame?>()
        let (server, port) = try await Self.startServer(closes: closes)
        let first = try await TestClient.webSocket(port: port)
        let second = try await TestClient.webSocket(port: port)
        for client in [first, second] {
            try await client.sendText("hi")
            #expect(try await client.nextMessage() == .text("hi"))
        }
        #expect(server.connectionCount == 2)

        let start = Self.clock.now
        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(10)) }
        for client in [first, second] {
            let close = try await client.nextClose()
            #expect(close.code == 1001)
            #expect(close.reason == "server shutting down")
            try await client.waitForTCPClose()
        }
        await shutdown.value
        // Both clients answered at once: no waiting for the grace period.
        #expect(Self.clock.now - start < .seconds(5))
        #expect(server.connectionCount == 0)
        #expect(try await closes.take()?.code == .goingAway)
        #expect(try await closes.take()?.code == .goingAway)

        await #expect(throws: (any Error).self) {
            _ = try await TestClient.raw(port: port)
        }
        // A second shutdown is harmless.
        await server.shutdown()
    }

    @Test func shutdownClosesWhatIsLeftAfterTheGracePeriod() async throws {
        let closes = Mailbox<CloseFrame?>()
        let (server, port) = try await Self.startServer(closes: closes)
        // This client never answers the close frame.
        let stubborn = try await TestClient.webSocket(port: port, autoCloseReply: false)
        try await stubborn.sendText("hi")
        #expect(try await stubborn.nextMessage() == .text("hi"))
        // An idle keep-alive HTTP connection.
        let http = try await TestClient.raw(port: port)
        try await http.send(raw: httpRequest("GET", "/healthz"))
        #expect(try await http.readResponse().status == 200)

        let start = Self.clock.now
        await server.shutdown(gracePeriod: .milliseconds(300))
        let elapsed = Self.clock.now - start
        #expect(elapsed >= .milliseconds(250), "shutdown took \(elapsed)")
        #expect(elapsed < .seconds(8), "shutdown took \(elapsed)")
        #expect(try await stubborn.nextClose().code == 1001)
        try await stubborn.waitForTCPClose(timeout: .seconds(2))
        try await http.waitForTCPClose(timeout: .seconds(2))
        #expect(try await closes.take()?.code == .abnormalClosure)
    }

    @Test func aServerThatNeverRanOrFailedToStartCanBeDropped() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho())
        let (running, port) = try await Self.startServer(closes: Mailbox())
        do {
            // Never started.
            _ = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0), router: router, logger: testLogger())
            // The port is taken: start throws, and the server is dropped.
            let second = WebSocketServer(configuration: .init(host: "127.0.0.1", port: port), router: router, logger: testLogger())
            await #expect(throws: (any Error).self) { try await second.start() }
        }
        // Still serving, and the process is alive.
        let client = try await TestClient.raw(port: port)
        try await client.send(raw: httpRequest("GET", "/healthz"))
        #expect(try await client.readResponse().status == 200)
        await running.shutdown(gracePeriod: .milliseconds(100))
    }

    @Test func runReturnsAfterShutdown() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho())
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0), router: router, logger: testLogger())
        let running = Task { try await server.run() }
        try await eventually("the server to listen") { server.localAddress != nil }
        let port = try #require(server.localAddress?.port)
        let client = try await TestClient.raw(port: port)
        try await client.send(raw: httpRequest("GET", "/healthz"))
        #expect(try await client.readResponse().status == 200)
        await server.shutdown(gracePeriod: .milliseconds(100))
        try await running.value
        try await client.waitForTCPClose(timeout: .seconds(2))
    }
}
