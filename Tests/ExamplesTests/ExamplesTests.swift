import Duplex
import Foundation
import Testing
@testable import chat_rooms
@testable import ticker_publisher

/// The examples in Examples/, run against real connections on loopback.
@Suite struct ExamplesTests {
    /// Starts a server on a free port, runs `body` with its port, then shuts it down.
    static func withServer(_ router: WebSocketRouter, _ configure: (WebSocketServer) -> Void = { _ in },
                           _ body: (WebSocketServer, Int) async throws -> Void) async throws {
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0), router: router)
        configure(server)
        let port = try #require(try await server.start().port)
        do {
            try await body(server, port)
        } catch {
            await server.shutdown(gracePeriod: .milliseconds(100))
            throw error
        }
        await server.shutdown(gracePeriod: .milliseconds(100))
    }

    static func nextEvent(_ iterator: inout WebSocketMessages.AsyncIterator) async throws -> ChatRooms.Event? {
        guard case .text(let text)? = try await iterator.next() else { return nil }
        return try JSONDecoder().decode(ChatRooms.Event.self, from: Data(text.utf8))
    }

    @Test func chatRoomsJoinTalkAndLeave() async throws {
        let handle = ChatRooms.ServerHandle()
        try await Self.withServer(ChatRooms.router(server: handle), handle.set) { server, port in
            let ana = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/rooms/lobby?name=ana")
            var anaEvents = ana.messages.makeAsyncIterator()
            #expect(try await Self.nextEvent(&anaEvents) == .init(type: .join, room: "lobby", user: "ana", members: 1))

            let ben = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/rooms/lobby?name=ben")
            var benEvents = ben.messages.makeAsyncIterator()
            let benJoined = ChatRooms.Event(type: .join, room: "lobby", user: "ben", members: 2)
            #expect(try await Self.nextEvent(&benEvents) == benJoined)
            #expect(try await Self.nextEvent(&anaEvents) == benJoined)

            // Another room hears nothing of the lobby.
            let cat = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/rooms/kitchen?name=cat")
            var catEvents = cat.messages.makeAsyncIterator()
            #expect(try await Self.nextEvent(&catEvents)?.members == 1)

            try await ana.send(text: "hi ben")
            let said = ChatRooms.Event(type: .message, room: "lobby", user: "ana", text: "hi ben")
            #expect(try await Self.nextEvent(&anaEvents) == said)  // the sender sees its own message
            #expect(try await Self.nextEvent(&benEvents) == said)

            _ = try await ben.close()
            #expect(try await Self.nextEvent(&anaEvents) == .init(type: .leave, room: "lobby", user: "ben", members: 1))
            #expect(server.subscriberCount(of: "room.kitchen") == 1)
            _ = try await ana.close()
            _ = try await cat.close()
        }
    }

    @Test(arguments: ["/rooms/lobby", "/rooms/lobby?name=", "/rooms/lobby?name=a%20b", "/rooms/bad!room?name=ana",
                      "/rooms/lobby?name=" + String(repeating: "x", count: 33)])
    func chatRoomsRefuseBadNamesAtTheHandshake(path: String) async throws {
        try await Self.expectRefusal(of: path, by: ChatRooms.router(server: ChatRooms.ServerHandle()))
    }

    /// Expects `path` to be refused with 400 at the handshake.
    static func expectRefusal(of path: String, by router: WebSocketRouter) async throws {
        try await withServer(router) { _, port in
            do {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)\(path)")
                _ = try? await ws.close()
                Issue.record("\(path) was accepted")
            } catch WebSocketError.handshakeFailed(.unexpectedStatus(let status, _)) {
                #expect(status == .badRequest)
            }
        }
    }

    @Test func chatRoomsCloseOversizedMessagesWith1009() async throws {
        try await Self.withServer(ChatRooms.router(server: ChatRooms.ServerHandle())) { _, port in
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/rooms/lobby?name=ana")
            try await ws.send(text: String(repeating: "x", count: 5000))
            #expect(await ws.waitForClose().code == .messageTooBig)
        }
    }

    @Test(arguments: [("AAPL 187.25", "AAPL", 187.25), ("  BRK.B\t410.5 ", "BRK.B", 410.5)])
    func tickerLinesParse(line: String, symbol: String, price: Double) throws {
        let quote = try #require(TickerFeed.parse(line, now: Date(timeIntervalSince1970: 1_764_582_000.5)))
        #expect(quote == TickerFeed.Quote(symbol: symbol, price: price, time: 1_764_582_000_500))
    }

    @Test(arguments: ["", "# comment", "AAPL", "AAPL abc", "AAPL 1 2", "aapl 1.0", "AAPL nan", "AAPL inf",
                      "TOOLONGSYMBOL1 1.0"])
    func tickerIgnoresOtherLines(line: String) {
        #expect(TickerFeed.parse(line) == nil)
    }

    @Test func tickerPushesEachSymbolToItsSubscribers() async throws {
        try await Self.withServer(TickerFeed.router()) { server, port in
            let apple = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/prices?symbols=AAPL")
            let both = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/prices?symbols=AAPL,MSFT")
            while server.subscriberCount(of: "prices.AAPL") < 2 || server.subscriberCount(of: "prices.MSFT") < 1 {
                try await Task.sleep(for: .milliseconds(5))
            }
            let feed = AsyncThrowingStream<String, any Error> { continuation in
                for line in ["AAPL 187.25", "garbage", "MSFT 402.10", "AAPL 187.30"] { continuation.yield(line) }
                continuation.finish()
            }
            #expect(try await TickerFeed.publish(feed, to: server) == 3)

            func symbols(_ ws: WebSocketConnection, _ count: Int) async throws -> [String] {
                var iterator = ws.messages.makeAsyncIterator()
                var seen: [String] = []
                for _ in 0..<count {
                    guard case .text(let text)? = try await iterator.next() else { break }
                    seen.append(try JSONDecoder().decode(TickerFeed.Quote.self, from: Data(text.utf8)).symbol)
                }
                return seen
            }
            #expect(try await symbols(apple, 2) == ["AAPL", "AAPL"])
            #expect(try await symbols(both, 3) == ["AAPL", "MSFT", "AAPL"])
            _ = try await apple.close()
            _ = try await both.close()
        }
    }

    @Test(arguments: ["/prices", "/prices?symbols=", "/prices?symbols=aapl", "/prices?symbols=A,,B"])
    func tickerRefusesBadSymbolLists(path: String) async throws {
        try await Self.expectRefusal(of: path, by: TickerFeed.router())
    }
}
