import DuplexCore
import Metrics

/// Counters through swift-metrics (a no-op until the application bootstraps a backend).
///
/// | metric | kind | dimensions |
/// | --- | --- | --- |
/// | `duplex_connections_opened_total` | counter | `role` |
/// | `duplex_connections_active` | gauge (meter) | `role` |
/// | `duplex_messages_received_total`, `duplex_messages_sent_total`, `duplex_messages_dropped_total` | counter | `role` |
/// | `duplex_bytes_received_total`, `duplex_bytes_sent_total` | counter | `role` |
/// | `duplex_closes_total` | counter | `role`, `code` |
/// | `duplex_protocol_errors_total` | counter | `role` |
/// | `duplex_sends_buffered_total` | counter | `role` (a send answered `.buffered`: over the high-water mark) |
/// | `duplex_handshake_refusals_total` | counter | `status` (every WebSocket opening refused, HTTP/1.1 or HTTP/2) |
/// | `duplex_upgrade_duration_seconds` | timer | none (opening request complete to its acceptance, the `onUpgrade` hook included) |
/// | `duplex_publishes_total` | counter | `subscribers`: 0, 1, 2-10, 11-100, 101-1000, 1001+ |
/// | `duplex_publish_deliveries_total` | counter | none (subscribers a publish went to) |
struct WebSocketMetrics: Sendable {
    let role: String
    let openedCounter: Counter
    let active: Meter
    let messagesReceived: Counter
    let messagesSent: Counter
    let messagesDropped: Counter
    let bytesReceived: Counter
    let bytesSent: Counter
    let protocolErrors: Counter
    let sendsBuffered: Counter

    init(role: Role) {
        let name = role == .server ? "server" : "client"
        let dims = [("role", name)]
        self.role = name
        openedCounter = Counter(label: "duplex_connections_opened_total", dimensions: dims)
        active = Meter(label: "duplex_connections_active", dimensions: dims)
        messagesReceived = Counter(label: "duplex_messages_received_total", dimensions: dims)
        messagesSent = Counter(label: "duplex_messages_sent_total", dimensions: dims)
        messagesDropped = Counter(label: "duplex_messages_dropped_total", dimensions: dims)
        bytesReceived = Counter(label: "duplex_bytes_received_total", dimensions: dims)
        bytesSent = Counter(label: "duplex_bytes_sent_total", dimensions: dims)
        protocolErrors = Counter(label: "duplex_protocol_errors_total", dimensions: dims)
        sendsBuffered = Counter(label: "duplex_sends_buffered_total", dimensions: dims)
    }

    func opened() { openedCounter.increment(); active.increment() }
    func closed(code: CloseCode?) {
        active.decrement()
        Counter(label: "duplex_closes_total", dimensions: [("role", role), ("code", "\(code?.rawValue ?? 1006)")]).increment()
    }
    func received(bytes: Int) { bytesReceived.increment(by: bytes) }
    func sent(bytes: Int) { bytesSent.increment(by: bytes) }
    func messageReceived() { messagesReceived.increment() }
    func messageSent() { messagesSent.increment() }
    func messageDropped() { messagesDropped.increment() }
    func protocolError() { protocolErrors.increment() }
    func sendBuffered() { sendsBuffered.increment() }
}

/// What a server measures outside any one connection: refusals and upgrade latency (both
/// recorded by `ServerContext.admitWebSocket`, for either HTTP version). Made when
/// the server is, so a backend bootstrapped before (as `duplex serve --metrics` does) gets them.
struct ServerMetrics: Sendable {
    let upgradeDuration = Timer(label: "duplex_upgrade_duration_seconds")

    func refused(status: Int) {
        Counter(label: "duplex_handshake_refusals_total", dimensions: [("status", "\(status)")]).increment()
    }

    func upgraded(after nanoseconds: Int64) { upgradeDuration.recordNanoseconds(nanoseconds) }
}

/// Publishes to a server's topics, by how many subscribers they reached.
struct TopicMetrics: Sendable {
    let deliveries = Counter(label: "duplex_publish_deliveries_total")
    /// `duplex_publishes_total` by the number of subscribers, one counter per bucket.
    let publishes: [Counter] = ["0", "1", "2-10", "11-100", "101-1000", "1001+"].map {
        Counter(label: "duplex_publishes_total", dimensions: [("subscribers", $0)])
    }

    func published(toSubscribers count: Int) {
        let bucket = switch count {
        case 0: 0
        case 1: 1
        case 2...10: 2
        case 11...100: 3
        case 101...1000: 4
        default: 5
        }
        publishes[bucket].increment()
        if count > 0 { deliveries.increment(by: count) }
    }
}
