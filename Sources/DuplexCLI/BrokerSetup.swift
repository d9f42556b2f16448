import Duplex
import DuplexPostgres
import DuplexRedis
import NIOConcurrencyHelpers
import NIOCore

/// `duplex serve --broker URL`: which broker a URL names, and what `/healthz` says of it.
enum BrokerSetup {
    /// The environment variable read when `--broker` is not given.
    static let environmentVariable = "DUPLEX_BROKER"

    /// The broker of `url`: `redis://` or `postgres://` / `postgresql://`.
    /// - Throws: ``BrokerError`` for another scheme or a malformed URL (without its password).
    static func broker(for url: String) throws -> any PubSubBroker {
        let scheme = url.split(separator: ":", maxSplits: 1).first.map { $0.lowercased() } ?? ""
        switch scheme {
        case "redis": return try RedisBroker(url: url)
        case "postgres", "postgresql": return try PostgresBroker(url: url)
        default: throw BrokerError("--broker takes redis://HOST[:PORT][/DB] or postgres://USER:PASS@HOST[:PORT]/DB, not a '\(scheme)' URL")
        }
    }

    /// `GET /healthz` with a broker: 200 and `"status":"ok"` while its session is up, 503 and
    /// `"status":"degraded"` while it reconnects (local delivery goes on, across instances not).
    static func registerHealth(on router: inout WebSocketRouter, fanout: FanoutReference) {
        router.get("/healthz") { _ in
            guard let fanout = fanout.value else { return .text("ok\n") }
            let state = fanout.state
            let rtt = fanout.roundTripTime.map { duration -> String in
                let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
                return #","rtt_ms":\#(Double(micros) / 1000)"#
            } ?? ""
            let connected = state == .connected
            let body = #"{"status":"\#(connected ? "ok" : "degraded")","broker":{"url":"\#(jsonEscaped(fanout.broker.redactedDescription))","state":"\#(jsonEscaped(state.description))","node":"\#(fanout.node)"\#(rtt)}}"#
            return .json(body, status: connected ? .ok : .serviceUnavailable)
        }
    }

    private static func jsonEscaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// The fan-out, for the health route made before it.
final class FanoutReference: Sendable {
    private let box = NIOLockedValueBox<BrokerFanout?>(nil)
    var value: BrokerFanout? { box.withLockedValue { $0 } }
    func set(_ fanout: BrokerFanout) { box.withLockedValue { $0 = fanout } }
}
