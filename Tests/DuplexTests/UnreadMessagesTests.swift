import Duplex
import DuplexCore
import NIOCore
import Testing

/// A connection whose application sends but never iterates `ws.messages` (a ticker publisher)
/// keeps reading past ``WebSocketConfiguration/inboundQueueSize`` unread messages, within
/// ``WebSocketConfiguration/inboundQueueBytes``: pings are answered, pongs satisfy the
/// keepalive, and a close completes the closing handshake while the data messages wait.
@Suite struct UnreadMessagesTests {
    /// More than the queue's size in messages, far less than its byte budget.
    static let unread = 50

    @Test func aServerHandlerThatNeverReadsStillAnswersPingsPongsAndClose() async throws {
        let closes = Mailbox<CloseFrame?>()
        var router = WebSocketRouter()
        // The server pings every 200 ms and gives up after 2 s without a pong.
        let configuration = quietConfiguration(pingInterval: .milliseconds(200), pongTimeout: .seconds(2),
                                               inboundQueueSize: 2)
        router.webSocket("/ticker", WebSocketEndpoint(configuration: configuration) { ws in
            try await ws.send(text: "tick")
            // Never iterates ws.messages; the end of the connection cancels the wait.
            try? await Task.sleep(for: .seconds(20))
            closes.put(ws.closeFrame)
        })
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/ticker")
            #expect(try await client.nextMessage() == .text("tick"))
            for n in 0..<Self.unread { try await client.sendText("message \(n)") }
            // Well past the server's pong timeout: its keepalive pings are answered (autoPong) and read.
            for n in 0..<8 {
                try await Task.sleep(for: .milliseconds(400))
                try await client.sendPing(Array("p\(n)".utf8))
            }
            var pongs = 0
            while pongs < 8 {
                if case .pong = try await client.next(timeout: .seconds(2)) { pongs += 1 }
            }
            #expect(try await client.isClosed == false, "the server closed a connection whose peer answers its pings")
            try await client.sendClose(code: 1000)
            let echo = try await client.nextClose(skippingData: true, timeout: .seconds(2))
            #expect(echo.code == 1000)
            #expect(try await closes.take()?.code == .normalClosure)
        }
    }

    @Test func aClientThatNeverReadsKeepsItsKeepaliveAndPing() async throws {
        let serverCloses = Mailbox<CloseFrame>()
        var router = WebSocketRouter()
        // The server sends more messages than the client's queue holds, then echoes.
        router.webSocket("/flood", WebSocketEndpoint(
            configuration: quietConfiguration(pingInterval: .milliseconds(200), pongTimeout: .seconds(2)),
            callbacks: WebSocketCallbacks(
                onOpen: { ws in for n in 0..<Self.unread { ws.send(text: "message \(n)") } },
                onMessage: { ws, data in ws.send(data) },
                onClose: { _, frame in serverCloses.put(frame) }
            )))
        try await withServer(router) { port, _ in
            let webSocket = WebSocketConfiguration(pingInterval: .milliseconds(200), pongTimeout: .seconds(2),
                                                   inboundQueueSize: 2)
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/flood",
                                                 configuration: WebSocketClientConfiguration(webSocket: webSocket),
                                                 group: testLoop, logger: testLogger())
            // A ticker: sends, never iterates ws.messages, for well past both pong timeouts.
            for n in 0..<10 {
                try await ws.send(text: "tick \(n)")
                try await Task.sleep(for: .milliseconds(350))
            }
            let roundTrip = try await ws.ping(ByteBuffer(string: "still there"))
            #expect(roundTrip < .seconds(2))
            #expect(ws.closeFrame == nil)
            #expect(serverCloses.pending.isEmpty)
            let frame = try await ws.close()
            #expect(frame.code == .normalClosure)
            #expect(try await serverCloses.take().code == .normalClosure)
        }
    }
}
