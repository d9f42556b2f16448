import Metrics

/// A broker's metrics through swift-metrics, with dimension `broker` (its ``PubSubBroker/kind``):
///
/// | metric | kind |
/// | --- | --- |
/// | `duplex_broker_published_total` | counter: messages this server published to the broker |
/// | `duplex_broker_received_total` | counter: messages from other servers delivered here |
/// | `duplex_broker_dropped_total` | counter: local publishes not sent (broker away, or over ``BrokerFanout/Configuration/maxPendingPublishes``) |
/// | `duplex_broker_reconnects_total` | counter: sessions made again after one was lost |
/// | `duplex_broker_rtt_seconds` | timer: round trip of the periodic ping |
/// | `duplex_broker_connected` | gauge: 1 while a session is up |
struct BrokerMetrics: Sendable {
    let published: Counter
    let received: Counter
    let dropped: Counter
    let reconnects: Counter
    let roundTrip: Metrics.Timer
    let connected: Gauge

    init(kind: String) {
        let dimensions = [("broker", kind)]
        published = Counter(label: "duplex_broker_published_total", dimensions: dimensions)
        received = Counter(label: "duplex_broker_received_total", dimensions: dimensions)
        dropped = Counter(label: "duplex_broker_dropped_total", dimensions: dimensions)
        reconnects = Counter(label: "duplex_broker_reconnects_total", dimensions: dimensions)
        roundTrip = Metrics.Timer(label: "duplex_broker_rtt_seconds", dimensions: dimensions)
        connected = Gauge(label: "duplex_broker_connected", dimensions: dimensions)
    }
}
