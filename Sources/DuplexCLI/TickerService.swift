import Duplex
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The simulated stock ticker of `duplex serve`: every `interval` it moves a few prices at random
/// and publishes them to topic `ticker` as one JSON text message:
/// `{"type":"ticker","time":<unix ms>,"prices":[{"symbol":"DPLX","price":101.25,"change":0.35}, ...]}`.
///
/// With a broker the ticker publishes through it to every instance, and its messages carry
/// `"node":"<first 8 hex digits of the instance's node id>"`: every instance with a ticker adds
/// its own stream of prices, so run it on one instance (`--ticker-interval 0` on the others).
struct TickerService: Service {
    static let topic = "ticker"
    let server: WebSocketServer
    let interval: Duration
    /// The publishing instance's short node id, with a broker.
    var node: String? = nil

    private struct Quote {
        var symbol: String
        var price: Double
        var change: Double = 0
    }

    func run() async throws {
        await cancelWhenGracefulShutdown { await tick() }
    }

    private func tick() async {
        var quotes = [Quote(symbol: "DPLX", price: 101.25), Quote(symbol: "SWFT", price: 54.10),
                      Quote(symbol: "NIO", price: 23.80), Quote(symbol: "WSKT", price: 310.00),
                      Quote(symbol: "RFC", price: 64.55)]
        var random = SystemRandomNumberGenerator()
        do {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                for index in quotes.indices {
                    // A small random walk, in cents, never below one dollar.
                    let step = Double(Int.random(in: -40...40, using: &random)) / 100 * (quotes[index].price / 100)
                    let price = max(1, (quotes[index].price + step) * 100).rounded() / 100
                    quotes[index].change = ((price - quotes[index].price) * 100).rounded() / 100
                    quotes[index].price = price
                }
                server.publish(.text(Self.json(quotes: quotes, node: node)), to: Self.topic)
            }
        } catch {
            // Cancelled: the server shuts down.
        }
    }

    private static func json(quotes: [Quote], node: String?) -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let millis = Int(now.tv_sec) * 1000 + Int(now.tv_nsec) / 1_000_000
        let prices = quotes.map { #"{"symbol":"\#($0.symbol)","price":\#(decimal($0.price)),"change":\#(decimal($0.change))}"# }
        let origin = node.map { #","node":"\#($0)""# } ?? ""
        return #"{"type":"ticker","time":\#(millis)\#(origin),"prices":[\#(prices.joined(separator: ","))]}"#
    }

    /// Two decimals, without Foundation's formatters.
    private static func decimal(_ value: Double) -> String {
        let cents = Int((value * 100).rounded())
        let sign = cents < 0 ? "-" : ""
        let magnitude = abs(cents)
        let fraction = magnitude % 100
        return "\(sign)\(magnitude / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
