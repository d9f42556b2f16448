import NIOCore

/// Publish/subscribe across the WebSockets of an upgrader, as across a ``WebSocketServer``'s
/// (the same guarantees): its connections subscribe (``WebSocketConnection/subscribe(to:)``), anyone publishes.
extension DuplexUpgrader {
    /// Publishes `message` to every subscriber of `topic` among this upgrader's connections, from
    /// any thread or task.
    /// - Returns: the number of subscribers the message goes to.
    @discardableResult
    public func publish(_ message: WebSocketMessage, to topic: String) -> Int {
        context.publish(message, to: topic)
    }

    /// Publishes bytes as a text (`isText`, valid UTF-8) or binary message; see `publish(_:to:)`.
    @discardableResult
    public func publish(_ data: WebSocketData, to topic: String) -> Int {
        context.publish(data, to: topic)
    }

    /// The number of this upgrader's connections subscribed to `topic`.
    public func subscriberCount(of topic: String) -> Int { context.topics.subscriberCount(of: topic) }

    /// Every topic with subscribers among this upgrader's connections, and their number.
    public var topics: [String: Int] { context.topics.counts }
}
