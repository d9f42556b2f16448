import NIOCore

/// Publish/subscribe fan-out: connections subscribe to topics (``WebSocketConnection/subscribe(to:)``,
/// ``EventLoopWebSocket/subscribe(to:)``); anyone publishes.
///
/// A publish builds its frame once and writes the same bytes to every subscriber whose messages
/// nothing transforms (subscribers with permessage-deflate get it compressed for them), with one
/// hop per event loop and one flush per connection per turn of its loop.
///
/// Guarantees: messages from one publisher to one topic arrive in publish order; a connection's
/// subscribe and unsubscribe are ordered with its own sends and publishes; delivery is
/// at-most-once: a subscriber whose outbound buffer passes
/// ``WebSocketConfiguration/outboundHardLimit`` meets its ``WebSocketConfiguration/backpressurePolicy``
/// (by default it is closed with 1013, try again later; `.drop` loses the message instead) and
/// never delays the others. A server holds at most the hard limit per subscriber (or one
/// message of up to the limit's payload with its headers, and the policy's close frame).
extension WebSocketServer {
    /// Publishes `message` to every subscriber of `topic`, from any thread or task (on an event
    /// loop it delivers to that loop's subscribers before it returns).
    /// - Returns: the number of subscribers the message goes to.
    @discardableResult
    public func publish(_ message: WebSocketMessage, to topic: String) -> Int {
        context.publish(message, to: topic)
    }

    /// Publishes bytes as a text (`isText`, valid UTF-8) or binary message; see ``publish(_:to:)``.
    @discardableResult
    public func publish(_ data: WebSocketData, to topic: String) -> Int {
        context.publish(data, to: topic)
    }

    /// The number of this server's connections subscribed to `topic`.
    public func subscriberCount(of topic: String) -> Int {
        context.topics.subscriberCount(of: topic)
    }

    /// Every topic with subscribers on this server, and their number.
    public var topics: [String: Int] {
        context.topics.counts
    }

    /// Calls `hook` on every 0 → 1 and 1 → 0 transition of a topic's subscriber count on this
    /// server (nil removes it): the seam for fan-out across servers. It runs in order, with the
    /// topic registry's lock held: keep it short, and hand the event to a task or a queue rather
    /// than calling back into the topic API from it.
    public func onTopicTransition(_ hook: (@Sendable (TopicTransition) -> Void)?) {
        context.topics.setObserver(hook)
    }
}

extension ServerContext {
    /// A publish to this server's (or upgrader's) topics: the frame built once.
    func publish(_ message: WebSocketMessage, to topic: String) -> Int {
        topics.publish(SharedFrame(message), to: topic)
    }

    /// A publish of bytes as a text or binary message.
    func publish(_ data: WebSocketData, to topic: String) -> Int {
        topics.publish(SharedFrame(opcode: data.isText ? .text : .binary, payload: data.bytes), to: topic)
    }
}
