import Metrics
import NIOConcurrencyHelpers

/// A server's counts by transport: accepted TCP connections (and of those, the ones that speak
/// HTTP/2), and WebSockets opened over HTTP/1.1 upgrades and over HTTP/2 streams. Also reported
/// through swift-metrics as `duplex_connections_by_transport_total` (dimensions `role`, `transport`)
/// and `duplex_tcp_connections_accepted_total`.
final class TransportStatistics: Sendable {
    private struct Counts {
        var accepted = 0
        var http2Connections = 0
        var webSockets: [WebSocketTransportKind: Int] = [:]
    }

    private let counts = NIOLockedValueBox(Counts())
    private let acceptedCounter = Counter(label: "duplex_tcp_connections_accepted_total")
    private let webSocketCounters: [WebSocketTransportKind: Counter] = Dictionary(
        uniqueKeysWithValues: WebSocketTransportKind.allCases.map {
            ($0, Counter(label: "duplex_connections_by_transport_total", dimensions: [("role", "server"), ("transport", $0.rawValue)]))
        })

    func accepted() {
        counts.withLockedValue { $0.accepted += 1 }
        acceptedCounter.increment()
    }

    func http2Connection() { counts.withLockedValue { $0.http2Connections += 1 } }

    func webSocketOpened(over transport: WebSocketTransportKind) {
        counts.withLockedValue { $0.webSockets[transport, default: 0] += 1 }
        webSocketCounters[transport]?.increment()
    }

    var acceptedConnections: Int { counts.withLockedValue { $0.accepted } }
    var http2Connections: Int { counts.withLockedValue { $0.http2Connections } }
    func webSocketsOpened(over transport: WebSocketTransportKind) -> Int { counts.withLockedValue { $0.webSockets[transport] ?? 0 } }
}

extension ServerContext {
    func countOpened(over transport: WebSocketTransportKind) { transportStatistics.webSocketOpened(over: transport) }
    func countConnection(over transport: WebSocketTransportKind) {
        if transport == .h2 { transportStatistics.http2Connection() }
    }
}

extension WebSocketServer {
    /// TCP connections accepted since the server started (HTTP/1.1 and HTTP/2 alike).
    public var acceptedConnectionCount: Int { context.transportStatistics.acceptedConnections }
    /// Accepted connections that speak HTTP/2 (ALPN `h2`, or h2c with prior knowledge).
    public var http2ConnectionCount: Int { context.transportStatistics.http2Connections }
    /// WebSockets opened since the server started over `transport`: HTTP/1.1 upgrades, or HTTP/2
    /// streams (RFC 8441). An operator sees here which clients use HTTP/2.
    public func webSocketsOpened(over transport: WebSocketTransportKind) -> Int {
        context.transportStatistics.webSocketsOpened(over: transport)
    }
}
