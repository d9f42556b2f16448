import Duplex
import HummingbirdChat
import HummingbirdTesting
import Logging
import Testing

/// The example app of Examples/HummingbirdChat, run as it is, with Duplex's client.
@Suite struct HummingbirdChatTests {
    static func join(_ port: Int, _ path: String) async throws -> WebSocketConnection {
        try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)\(path)", configuration: .init(proxy: .none),
                                              logger: DuplexHummingbirdTests.logger())
    }

    @Test func twoMembersOfARoomChat() async throws {
        let app = ChatApp.build(port: 0, logger: DuplexHummingbirdTests.logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
            }
            let ana = try await Self.join(port, "/chat/lobby?name=ana")
            let ben = try await Self.join(port, "/chat/lobby?name=ben")
            let elsewhere = try await Self.join(port, "/chat/attic?name=cy")
            var anaHears = ana.messages.makeAsyncIterator()
            var benHears = ben.messages.makeAsyncIterator()
            var cyHears = elsewhere.messages.makeAsyncIterator()
            // Each is in its room once it has been told so.
            #expect(try await anaHears.next() == .text("joined lobby as ana"))
            #expect(try await benHears.next() == .text("joined lobby as ben"))
            #expect(try await cyHears.next() == .text("joined attic as cy"))
            try await ana.send(text: "hi")
            try await elsewhere.send(text: "anyone?")
            #expect(try await benHears.next() == .text("ana: hi"))
            #expect(try await anaHears.next() == .text("ana: hi"))
            #expect(try await cyHears.next() == .text("cy: anyone?"))
            try await ben.send(text: "hello ana")
            #expect(try await anaHears.next() == .text("ben: hello ana"))
            #expect(try await benHears.next() == .text("ben: hello ana"))
            for ws in [ana, ben, elsewhere] { #expect(try await ws.close().code == .normalClosure) }
        }
    }

    @Test func aMemberWithoutANameIsRefused() async throws {
        let app = ChatApp.build(port: 0, logger: DuplexHummingbirdTests.logger())
        try await app.test(.live) { client in
            let port = try #require(client.port)
            for path in ["/chat/lobby", "/chat/lobby?name="] {
                do {
                    _ = try await Self.join(port, path)
                    Issue.record("\(path) was accepted")
                } catch WebSocketError.handshakeFailed(.unexpectedStatus(let status, _)) {
                    #expect(status == .badRequest, "\(path)")
                }
            }
        }
    }
}
