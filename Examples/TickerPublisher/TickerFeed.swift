import Duplex
import Foundation

/// Pushes prices from a data source to topics, one topic per symbol (`prices.SYMBOL`).
///
/// The source is any async sequence of lines `SYMBOL PRICE` (stdin in `main.swift`, so any feed
/// can be piped in: `tail -f quotes.txt | swift run ticker-publisher`). Clients connect to
/// `ws://HOST:PORT/prices?symbols=AAPL,MSFT` and receive, for each line of their symbols,
///
/// ```json
/// {"price":187.25,"symbol":"AAPL","time":1764582000123}
/// ```
///
/// Each price is encoded and framed once per topic, whatever the number of subscribers; a
/// subscriber that cannot keep up meets the endpoint's backpressure policy (closed with 1013 by
/// default) rather than growing the server's memory.
public enum TickerFeed {
    /// One price update, as subscribers receive it.
    public struct Quote: Codable, Equatable, Sendable {
        public var symbol: String
        public var price: Double
        /// Milliseconds since 1970.
        public var time: Int64
    }

    /// The topic of a symbol.
    public static func topic(_ symbol: String) -> String { "prices." + symbol }

    /// A line `SYMBOL PRICE` as a quote; nil for anything else (blank lines, comments, bad numbers).
    public static func parse(_ line: String, now: Date = Date()) -> Quote? {
        let fields = line.split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, isValidSymbol(fields[0]), let price = Double(fields[1]), price.isFinite else { return nil }
        return Quote(symbol: String(fields[0]), price: price, time: Int64(now.timeIntervalSince1970 * 1000))
    }

    /// Symbols are 1-12 characters of `A-Z 0-9 .`.
    static func isValidSymbol(_ symbol: Substring) -> Bool {
        (1...12).contains(symbol.utf8.count) && symbol.utf8.allSatisfy { byte in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || byte == UInt8(ascii: ".")
        }
    }

    /// The routes: `/prices?symbols=A,B,...` subscribes to those symbols' topics.
    public static func router() -> WebSocketRouter {
        var router = WebSocketRouter()
        router.webSocket("/prices", WebSocketEndpoint(
            onUpgrade: { request in
                let list = request.query.flatMap { URLComponents(string: "?" + $0)?.queryItems }?
                    .first { $0.name == "symbols" }?.value ?? ""
                let symbols = list.split(separator: ",", omittingEmptySubsequences: false)
                guard !list.isEmpty, symbols.count <= 50, symbols.allSatisfy(isValidSymbol) else {
                    return .reject(status: .badRequest, reason: "use /prices?symbols=AAPL,MSFT (1-50 symbols of A-Z 0-9 .)")
                }
                return .accept(userData: symbols.map(String.init))
            },
            handler: { ws in
                for symbol in ws.userData as? [String] ?? [] { _ = try await ws.subscribe(to: topic(symbol)) }
                // Subscribers only listen; reading keeps pings, pongs and the close flowing.
                for try await _ in ws.messages {}
            }
        ))
        return router
    }

    /// Publishes every quote of `lines` until the source ends; returns how many were published.
    @discardableResult
    public static func publish(_ lines: some AsyncSequence<String, any Error>, to server: WebSocketServer) async throws -> Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var published = 0
        for try await line in lines {
            guard let quote = parse(line), let json = try? encoder.encode(quote) else { continue }
            _ = server.publish(.text(String(decoding: json, as: UTF8.self)), to: topic(quote.symbol))
            published += 1
        }
        return published
    }
}
