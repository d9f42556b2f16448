import DuplexCore
import NIOCore

/// Callbacks that run on a connection's event loop: the fastest way to serve WebSockets,
/// with no task or actor hop per message.
///
/// Do not block in them. Sends made in `onMessage` are written at once and flushed once at the
/// end of the read batch.
public struct WebSocketCallbacks: Sendable {
    /// The connection is open (after the 101 went out, or the client's handshake completed); the
    /// first callback of a connection. Default: does nothing.
    public var onOpen: @Sendable (EventLoopWebSocket) -> Void
    /// A complete data message arrived (reassembled and, with permessage-deflate, inflated). Sends
    /// made here are written before anything read after this message is acted on.
    public var onMessage: @Sendable (EventLoopWebSocket, WebSocketData) -> Void
    /// The outbound buffer fell under the low-water mark after a send answered ``SendResult/buffered``
    /// (once per such send's drain, not on every writability change).
    public var onDrain: @Sendable (EventLoopWebSocket) -> Void
    /// The connection is over; the close code and reason are given.
    public var onClose: @Sendable (EventLoopWebSocket, CloseFrame) -> Void

    /// Callbacks; only `onMessage` is required, the others do nothing by default.
    public init(
        onOpen: @escaping @Sendable (EventLoopWebSocket) -> Void = { _ in },
        onMessage: @escaping @Sendable (EventLoopWebSocket, WebSocketData) -> Void,
        onDrain: @escaping @Sendable (EventLoopWebSocket) -> Void = { _ in },
        onClose: @escaping @Sendable (EventLoopWebSocket, CloseFrame) -> Void = { _, _ in }
    ) {
        self.onOpen = onOpen
        self.onMessage = onMessage
        self.onDrain = onDrain
        self.onClose = onClose
    }
}

/// A connection as seen from its event loop (in ``WebSocketCallbacks``). Not Sendable: use it
/// only inside the callbacks; hand ``socket`` to other tasks.
public struct EventLoopWebSocket {
    let driver: ConnectionDriver

    /// The Sendable handle of the same connection, for use from other tasks (made on first use).
    public var socket: WebSocketConnection { driver.socket }

    /// The subprotocol agreed in the opening handshake, if any.
    public var subprotocol: String? { driver.info.subprotocol }
    /// The upgrade request that opened the connection, with the endpoint's path parameters
    /// (server side; nil on a client). Made from the request head the connection keeps, on
    /// every read: read it once per connection, not per message (carry what a handler needs
    /// per message in `userData`).
    public var request: RouteRequest? { driver.info.request }
    /// Data the server's upgrade hook attached to this connection.
    public var userData: (any Sendable)? { driver.info.userData }

    /// Sends a received message on (echo, relay) without converting it.
    @discardableResult
    public func send(_ data: WebSocketData) -> SendResult {
        driver.send(data.isText ? .text : .binary, data.bytes)
    }

    /// Sends a text message; see ``SendResult`` for what became of it.
    @discardableResult
    public func send(text: String) -> SendResult { driver.send(.text, ByteBuffer(string: text)) }

    /// Sends a binary message; see ``SendResult`` for what became of it.
    @discardableResult
    public func send(binary: ByteBuffer) -> SendResult { driver.send(.binary, binary) }

    /// Sends a text or binary message; see ``SendResult`` for what became of it.
    @discardableResult
    public func send(_ message: WebSocketMessage) -> SendResult {
        switch message {
        case .text(let text): send(text: text)
        case .binary(let bytes): send(binary: bytes)
        }
    }

    /// Sends a ping (payload at most 125 bytes).
    public func ping(_ payload: ByteBuffer = ByteBuffer()) throws { try driver.ping(payload) }

    /// Starts the closing handshake.
    /// - Throws: ``WebSocketError/invalidSend(_:)`` for a code that may not be sent or a reason over 123 bytes.
    public func close(code: CloseCode = .normalClosure, reason: String = "") throws {
        try driver.close(code: code, reason: reason)
    }

    /// Whether the outbound buffer is under the high-water mark.
    public var isWritable: Bool { driver.isWritable }
    /// Bytes buffered for the socket and not yet written.
    public var bufferedBytes: Int { driver.bufferedBytes }
}

@available(*, unavailable)
extension EventLoopWebSocket: Sendable {}
