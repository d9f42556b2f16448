import Duplex
import DuplexCore
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// Nothing of a closed connection stays alive: a server with connection churn (mobile clients
/// reconnecting, a deploy) must not grow without bound.
@Suite struct ConnectionLifetimeTests {
    /// Weak references to the `WebSocketConnection` of every connection an endpoint opened.
    final class WeakSockets: Sendable {
        private struct Weak: @unchecked Sendable { weak var socket: WebSocketConnection? }
        private let refs = NIOLockedValueBox<[Weak]>([])

        func add(_ socket: WebSocketConnection) { refs.withLockedValue { $0.append(Weak(socket: socket)) } }
        var count: Int { refs.withLockedValue { $0.count } }
        var alive: Int { refs.withLockedValue { $0.filter { $0.socket != nil }.count } }
    }

    /// Opens `count` connections to `path`, closes every other one cleanly and the rest abruptly,
    /// and waits until the server saw them all close.
    private func churn(port: Int, path: String, count: Int, server: WebSocketServer) async throws {
        var clients: [TestClient] = []
        for _ in 0..<count {
            let client = try await TestClient.webSocket(port: port, path: path)
            try await client.sendText("hello")
            #expect(try await client.nextMessage() == .text("hello"))
            clients.append(client)
        }
        for (index, client) in clients.enumerated() {
            if index.isMultiple(of: 2) {
                try await client.sendClose(code: 1000)
                _ = try await client.nextClose()
                try await client.waitForTCPClose()
            } else {
                await client.close()
            }
        }
        try await eventually("the server to see every connection close") { server.connectionCount == 0 }
    }

    @Test(arguments: ["callbacks", "async"])
    func closedConnectionsAreFreed(api: String) async throws {
        let sockets = WeakSockets()
        var router = WebSocketRouter()
        let configuration = quietConfiguration()
        if api == "callbacks" {
            router.webSocket("/ws", WebSocketEndpoint(configuration: configuration, callbacks: WebSocketCallbacks(
                onOpen: { ws in sockets.add(ws.socket) },
                onMessage: { ws, data in ws.send(data) }
            )))
        } else {
            router.webSocket("/ws", WebSocketEndpoint(configuration: configuration) { ws in
                sockets.add(ws)
                for try await message in ws.messages { try await ws.send(message) }
            })
        }
        try await withServer(router) { port, server in
            try await churn(port: port, path: "/ws", count: 60, server: server)
            #expect(sockets.count == 60)
            // The channel, its pipeline and the handler go when NIO drops the closed channel;
            // the async handler's task ends a little later. Give both a moment, then nothing may remain.
            try await eventually("every closed connection's WebSocket to be freed (\(sockets.alive) alive)") {
                sockets.alive == 0
            }
        }
    }
}
