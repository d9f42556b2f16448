import NIOCore

/// Topics from the async API: subscribe a connection, publish to the others.
///
/// Closing a connection unsubscribes it from every topic. See ``WebSocketServer/publish(_:to:)``
/// for the delivery guarantees.
extension WebSocketConnection {
    /// Subscribes this connection to `topic`: every message published to it is sent here.
    /// - Returns: false if it already was subscribed.
    /// - Throws: ``WebSocketError/closed(_:)`` once the connection is closing,
    ///   ``WebSocketError/topicsUnavailable`` on a client connection.
    @discardableResult
    public func subscribe(to topic: String) async throws -> Bool {
        try await onLoop { try $0.subscribe(to: topic) }
    }

    /// Unsubscribes this connection from `topic`.
    /// - Returns: false if it was not subscribed.
    @discardableResult
    public func unsubscribe(from topic: String) async -> Bool {
        (try? await onLoop { $0.unsubscribe(from: topic) }) ?? false
    }

    /// The topics this connection subscribes to.
    public var topics: Set<String> {
        get async { (try? await onLoop { $0.topics }) ?? [] }
    }

    /// Publishes `message` to every subscriber of `topic` except this connection.
    /// - Returns: the number of subscribers it goes to.
    /// - Throws: ``WebSocketError/topicsUnavailable`` on a client connection.
    @discardableResult
    public func publish(_ message: WebSocketMessage, to topic: String) async throws -> Int {
        let frame = SharedFrame(message)
        return try await onLoop { try $0.publish(frame, to: topic) }
    }
}

/// Topics from the event-loop callbacks: the same operations, synchronous.
extension EventLoopWebSocket {
    /// Subscribes this connection to `topic`. Returns false if it already was subscribed.
    /// - Throws: ``WebSocketError/closed(_:)`` once the connection is closing,
    ///   ``WebSocketError/topicsUnavailable`` on a client connection.
    @discardableResult
    public func subscribe(to topic: String) throws -> Bool {
        try driver.subscribe(to: topic)
    }

    /// Unsubscribes this connection from `topic`. Returns false if it was not subscribed.
    @discardableResult
    public func unsubscribe(from topic: String) -> Bool {
        driver.unsubscribe(from: topic)
    }

    /// The topics this connection subscribes to.
    public var topics: Set<String> { driver.topics }

    /// Publishes `message` to every subscriber of `topic` except this connection.
    /// - Returns: the number of subscribers it goes to.
    @discardableResult
    public func publish(_ message: WebSocketMessage, to topic: String) throws -> Int {
        try driver.publish(SharedFrame(message), to: topic)
    }

    /// Publishes a received message on, unconverted (a relay), to every subscriber of `topic`
    /// except this connection.
    @discardableResult
    public func publish(_ data: WebSocketData, to topic: String) throws -> Int {
        try driver.publish(SharedFrame(opcode: data.isText ? .text : .binary, payload: data.bytes), to: topic)
    }
}
