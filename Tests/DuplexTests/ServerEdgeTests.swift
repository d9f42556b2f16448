import Duplex
import DuplexCore
import Foundation
import NIOCore
import Testing

/// The server at its edges: an upgrade that completes after shutdown started, and accepting
/// when file descriptors run out.
@Suite struct ServerEdgeTests {
    static let clock = ContinuousClock()

    @Test func anUpgradeDecidedAfterShutdownStartedGets503AtOnce() async throws {
        let gate = Gate()
        let deciding = Mailbox<Bool>()
        var router = WebSocketRouter()
        // A callback endpoint (no handler task for the shutdown to refuse) whose upgrade hook is
        // still deciding when the shutdown starts.
        router.webSocket("/echo", WebSocketEndpoint(configuration: quietConfiguration(), onUpgrade: { _ in
            deciding.put(true)
            await gate.wait()
            return .accept()
        }, callbacks: WebSocketCallbacks(onMessage: { ws, data in ws.send(data) })))
        router.webSocket("/stubborn", callbackEcho(configuration: quietConfiguration()))
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0), router: router, logger: testLogger())
        let port = try #require(try await server.start().port)
        // A WebSocket that never answers the server's 1001: the shutdown waits its grace period for it.
        let stubborn = try await TestClient.webSocket(port: port, path: "/stubborn", autoCloseReply: false)
        let client = try await TestClient.raw(port: port, sending: httpRequest("GET", "/echo", headers: upgradeHeaders()))
        _ = try await deciding.take()

        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(20)) }
        #expect(try await stubborn.nextClose().code == 1001)
        let start = Self.clock.now
        gate.open()
        let answer = try await client.readResponse(timeout: .seconds(5))
        #expect(answer.status == 503)
        #expect(answer.headers.first("Retry-After") == "1")
        try await client.waitForTCPClose(timeout: .seconds(5))
        let elapsed = Self.clock.now - start
        #expect(elapsed < .seconds(10), "the refused upgrade waited \(elapsed) (the grace period is 20 s)")
        await stubborn.close()  // the shutdown waited for this one only
        await shutdown.value
    }

    @Test func acceptingResumesAfterFileDescriptorsRanOut() async throws {
        // `duplex serve` under a limit of 64 file descriptors, driven by a Python client
        // (Tests/Interop/accept_emfile_check.py): it fills the limit, checks that the open
        // connections still echo and that the server logged the accept error, frees some and
        // checks that new connections are accepted again.
        let python = try await ServerInteropTests.interopPython()
        let duplex = try ClientCLITests.executable().path
        let script = repositoryRoot.appendingPathComponent("Tests/Interop/accept_emfile_check.py").path
        let (status, output) = try await runProcess(python, [script, duplex], timeout: .seconds(90))
        #expect(status == 0, "\(output)")
        #expect(output.contains("OK accepting resumed"), "\(output)")
    }
}
