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
}
