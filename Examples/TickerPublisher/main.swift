import Duplex
import Foundation
import Logging
import ServiceLifecycle

// printf 'AAPL 187.25\nMSFT 402.10\n' | swift run ticker-publisher [PORT]
// then: swift run duplex connect "ws://127.0.0.1:8082/prices?symbols=AAPL,MSFT"
let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8082
let logger = Logger(label: "ticker-publisher")
let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: port), router: TickerFeed.router(), logger: logger)
let address = try await server.start()
print("prices on ws://127.0.0.1:\(address.port ?? port)/prices?symbols=A,B; reading 'SYMBOL PRICE' lines from stdin")

/// Publishes stdin's quotes, then keeps serving until a signal (the feed ending is not the end).
struct FeedService: Service {
    let server: WebSocketServer
    func run() async throws {
        let count = try await TickerFeed.publish(Self.standardInputLines(), to: server)
        print("the feed ended after \(count) quotes")
        try await gracefulShutdown()
    }

    /// Lines of stdin, read on a thread of their own. When the publisher falls behind a fast feed,
    /// the oldest unread lines are dropped (a ticker wants the latest prices, not a backlog).
    static func standardInputLines() -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream(bufferingPolicy: .bufferingNewest(1024)) { continuation in
            Thread {
                while let line = readLine() { continuation.yield(line) }
                continuation.finish()
            }.start()
        }
    }
}
try await ServiceGroup(services: [server, FeedService(server: server)], gracefulShutdownSignals: [.sigint, .sigterm],
                       logger: logger).run()
