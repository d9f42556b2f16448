import Duplex
import NIOCore
import NIOPosix
import Testing

/// A connection's async handler runs on the connection's own event loop (the server's task
/// executor preference). User code in it awaits work finished elsewhere all the time (a database
/// client's future, completed on that client's event loop): the task must come back to its loop,
/// and the hand-over must be a proper happens-before (CI runs this under ThreadSanitizer).
@Suite struct HandlerExecutorTests {
    static let serverLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    static let otherLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    @Test func handlerAwaitingAnotherLoopsFutureResumesOnItsOwnLoop() async throws {
        let offLoop = Counter()
        var router = WebSocketRouter()
        router.webSocket("/db", WebSocketEndpoint(configuration: quietConfiguration()) { ws in
            var total = 0
            for try await message in ws.messages {
                guard case .text(let text) = message, let value = Int(text) else { continue }
                // Work completed on another event loop, as a database client's would be.
                let before = total
                let sum = try await Self.otherLoop.next().scheduleTask(in: .microseconds(50)) { before + value }.futureResult.get()
                if !ws.eventLoop.inEventLoop { offLoop.increment() }
                total = sum
                try await ws.send(text: "\(total)")
            }
        })
        try await withServer(router, group: Self.serverLoop) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/db")
            var expected = 0
            for value in 1...200 {
                try await client.sendText("\(value)")
                expected += value
                #expect(try await client.nextMessage() == .text("\(expected)"))
            }
            await client.close()
        }
        #expect(offLoop.current == 0, "the handler resumed off its connection's event loop")
    }
}
