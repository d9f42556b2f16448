import DuplexCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// An open WebSocket connection, server or client side, with an async API.
///
/// ```swift
/// for try await message in ws.messages {
///     try await ws.send(message)
/// }
/// ```
///
/// `WebSocket` is `Sendable`: any task may send on it at any time; each call hops to the
/// connection's event loop, and messages from one task go out in the order they were sent.
/// ``messages`` may be iterated by one task only. The iteration ends when the peer closes
/// cleanly and throws ``WebSocketError/closed(_:)`` when the connection fails or drops.
///
/// Backpressure: ``send(_:)`` suspends while the connection's outbound buffer is over its
/// high-water mark, and the connection stops reading from its socket while
/// ``WebSocketConfiguration/inboundQueueSize`` received messages wait in ``messages``.
public final class WebSocket: Sendable {
    /// The event loop the connection runs on.
    public let eventLoop: any EventLoop
    /// Received messages, in order.
    public let messages: WebSocketMessages
    /// The subprotocol agreed in the opening handshake, if any.
    public let subprotocol: String?
    /// The HTTP request that opened the connection (server side).
    public let request: WebSocketRequest?
    /// Data the server's upgrade hook attached to this connection.
    public let userData: (any Sendable)?
    /// The connection's logger (with its `connection_id`).
    public let logger: Logger

    let handler: NIOLoopBound<WebSocketHandler>
    let closedFuture: EventLoopFuture<CloseFrame>
    private let closeBox = NIOLockedValueBox<CloseFrame?>(nil)

    init(handler: NIOLoopBound<WebSocketHandler>, eventLoop: any EventLoop, messages: WebSocketMessages,
         closed: EventLoopFuture<CloseFrame>, setup: WebSocketSetup) {
        self.handler = handler
        self.eventLoop = eventLoop
        self.messages = messages
        self.closedFuture = closed
        self.subprotocol = setup.subprotocol
        self.request = setup.request
        self.userData = setup.userData
        self.logger = setup.logger
    }

    func recordClose(_ frame: CloseFrame) {
        closeBox.withLockedValue { $0 = frame }
    }

    /// The close code and reason once the connection is over: the peer's close frame (1005 when it
    /// had no code), this side's failure code (1002, 1007, 1009, ...), or 1006 when the transport
    /// dropped without a close frame. nil while the connection is open.
    public var closeFrame: CloseFrame? { closeBox.withLockedValue { $0 } }
    /// Shorthand for `closeFrame?.code`.
    public var closeCode: CloseCode? { closeFrame?.code }
    /// Shorthand for `closeFrame?.reason`.
    public var closeReason: String? { closeFrame?.reason }

    /// Sends a message; suspends while the outbound buffer is over the high-water mark.
    /// - Throws: ``WebSocketError/closed(_:)`` once the connection is closing,
    ///   ``WebSocketError/dropped`` when the backpressure policy dropped the message.
    public func send(_ message: WebSocketMessage) async throws {
        switch message {
        case .text(let text): try await send(.text, ByteBuffer(string: text))
        case .binary(let bytes): try await send(.binary, bytes)
        }
    }

    /// Sends a text message.
    public func send(text: String) async throws {
        try await send(.text, ByteBuffer(string: text))
    }

    /// Sends a binary message.
    public func send(binary: ByteBuffer) async throws {
        try await send(.binary, binary)
    }

    /// Sends a binary message from bytes.
    public func send(binary bytes: some Sequence<UInt8>) async throws {
        try await send(.binary, ByteBuffer(bytes: bytes))
    }

    private func send(_ opcode: Opcode, _ payload: ByteBuffer) async throws {
        let handler = self.handler
        try await eventLoop.flatSubmit {
            handler.value.sendAsync(opcode, payload, loop: handler.eventLoop)
        }.get()
    }

    /// Sends a ping (payload at most 125 bytes). Pongs are matched by the keepalive timer only.
    public func ping(_ payload: ByteBuffer = ByteBuffer()) async throws {
        let handler = self.handler
        try await eventLoop.submit { try handler.value.ping(payload) }.get()
    }

    /// Starts the closing handshake and waits until the connection is over (at most the close
    /// timeout). Does nothing more if the connection is already closing.
    /// - Throws: ``WebSocketError/invalidSend(_:)`` for a code that may not be sent or a reason over 123 bytes.
    @discardableResult
    public func close(code: CloseCode = .normalClosure, reason: String = "") async throws -> CloseFrame {
        let handler = self.handler
        try await eventLoop.submit {
            try handler.value.validateClose(code: code, reason: reason)
            handler.value.startClose(code: code, reason: reason)
        }.get()
        return try await closedFuture.get()
    }

    /// Waits until the connection is over and returns its close code and reason.
    public func waitForClose() async -> CloseFrame {
        (try? await closedFuture.get()) ?? CloseFrame(code: .abnormalClosure)
    }
}

/// The async sequence of a connection's received messages (single consumer).
public struct WebSocketMessages: AsyncSequence, Sendable {
    public typealias Element = WebSocketMessage
    let base: WebSocketHandler.Producer

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: WebSocketHandler.Producer.AsyncIterator
        public mutating func next() async throws -> WebSocketMessage? { try await base.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator()) }
}

/// The HTTP request that opened a server-side connection.
public struct WebSocketRequest: Sendable {
    /// The request target, e.g. `/chat?room=1`.
    public var uri: String
    public var path: String
    public var query: String?
    public var headers: HeaderList
    /// The peer's address.
    public var remoteAddress: SocketAddress?
}
