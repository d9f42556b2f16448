import DuplexCore
import NIOCore

/// Callbacks that run on a connection's event loop: the fastest way to serve WebSockets,
/// with no task or actor hop per message.
///
/// Do not block in them. Sends made in `onMessage` are written at once and flushed once at the
/// end of the read batch.
public struct WebSocketCallbacks: Sendable {
    public var onOpen: @Sendable (EventLoopWebSocket) -> Void
    public var onMessage: @Sendable (EventLoopWebSocket, WebSocketData) -> Void
    /// The outbound buffer fell under the low-water mark after a send answered ``SendResult/buffered``.
    public var onDrain: @Sendable (EventLoopWebSocket) -> Void
    /// The connection is over; the close code and reason are given.
    public var onClose: @Sendable (EventLoopWebSocket, CloseFrame) -> Void

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
    let handler: WebSocketHandler
    /// The Sendable handle of the same connection, for use from other tasks.
    public let socket: WebSocket

    /// Sends a received message on (echo, relay) without converting it.
    @discardableResult
    public func send(_ data: WebSocketData) -> SendResult {
        handler.send(data.isText ? .text : .binary, data.bytes)
    }

    @discardableResult
    public func send(text: String) -> SendResult { handler.send(.text, ByteBuffer(string: text)) }

    @discardableResult
    public func send(binary: ByteBuffer) -> SendResult { handler.send(.binary, binary) }

    @discardableResult
    public func send(_ message: WebSocketMessage) -> SendResult {
        switch message {
        case .text(let text): send(text: text)
        case .binary(let bytes): send(binary: bytes)
        }
    }

    /// Sends a ping (payload at most 125 bytes).
    public func ping(_ payload: ByteBuffer = ByteBuffer()) throws { try handler.ping(payload) }

    /// Starts the closing handshake.
    public func close(code: CloseCode = .normalClosure, reason: String = "") throws {
        try handler.validateClose(code: code, reason: reason)
        handler.startClose(code: code, reason: reason)
    }

    /// Whether the outbound buffer is under the high-water mark.
    public var isWritable: Bool { handler.isWritable }
    /// Bytes buffered for the socket and not yet written.
    public var bufferedBytes: Int { handler.bufferedOutboundBytes }
}

@available(*, unavailable)
extension EventLoopWebSocket: Sendable {}
