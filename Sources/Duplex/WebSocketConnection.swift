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
/// `WebSocketConnection` is `Sendable`: any task may send on it at any time; each call hops to the
/// connection's event loop, and messages from one task go out in the order they were sent.
/// ``messages`` may be iterated by one task only. The iteration ends when the peer closes
/// cleanly and throws ``WebSocketError/closed(_:)`` when the connection fails or drops.
///
/// Backpressure: ``send(_:)`` suspends while the connection's outbound buffer is over its
/// high-water mark, and the connection stops reading from its socket once
/// ``WebSocketConfiguration/inboundQueueSize`` received messages totalling
/// ``WebSocketConfiguration/inboundQueueBytes`` wait in ``messages``.
public final class WebSocketConnection: Sendable {
    /// The event loop the connection runs on.
    public let eventLoop: any EventLoop
    /// The subprotocol agreed in the opening handshake, if any.
    public let subprotocol: String?
    /// The upgrade request that opened the connection, with the endpoint's path parameters
    /// (server side; nil on a client). Made from the request head the connection keeps, on
    /// every read: read it once per connection, not per message (carry what a handler needs
    /// per message in `userData`).
    public var request: RouteRequest? { openingRequest?.routeRequest() }
    private let openingRequest: OpeningRequest?
    /// Data the server's upgrade hook attached to this connection.
    public let userData: (any Sendable)?
    /// The connection's logger (with its `connection_id`), made when asked for: a logger with
    /// metadata costs more than half a kilobyte, too much to keep for every idle connection.
    public var logger: Logger { settings.logger(connectionID: connectionID) }

    let transport: NIOLoopBound<any WebSocketTransport>
    let queue: InboundMessageQueue?
    private let settings: ConnectionSettings
    private let connectionID: UInt64
    private let closeBox = NIOLockedValueBox<CloseFrame?>(nil)

    init(driver: ConnectionDriver, queue: InboundMessageQueue?) {
        self.eventLoop = driver.eventLoop
        self.transport = NIOLoopBound(driver, eventLoop: driver.eventLoop)
        self.queue = queue
        self.subprotocol = driver.info.subprotocol
        self.openingRequest = driver.info.openingRequest
        self.userData = driver.info.userData
        self.settings = driver.settings
        self.connectionID = driver.info.connectionID
        if driver.finished { closeBox.withLockedValue { $0 = driver.connection.closeResult } }
    }

    /// Received messages, in order (single consumer). On a connection served by callbacks,
    /// messages go to `onMessage` and this sequence only ends when the connection does.
    ///
    /// Messages not read yet wait here, in order, none dropped. A connection that never reads
    /// them (a handler that only sends) still answers pings, counts pongs and completes a
    /// closing handshake while they total less than ``WebSocketConfiguration/inboundQueueBytes``
    /// (or fewer than ``WebSocketConfiguration/inboundQueueSize`` wait); past both it stops
    /// reading its socket until they are read. Messages still unread when a server handler
    /// returns, or when the connection ends and nobody iterates, are discarded.
    public var messages: WebSocketMessages { WebSocketMessages(queue: queue, socket: self) }

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

    /// On the connection's own event loop (where a server's handlers run by default) a send
    /// that the buffer takes returns at once, without a hop or an allocation; from elsewhere it
    /// hops to the loop once.
    private func send(_ opcode: Opcode, _ payload: ByteBuffer) async throws {
        if eventLoop.inEventLoop {
            let transport = self.transport.value
            switch transport.send(opcode, payload) {
            case .sent:
                return
            case .buffered:
                try await withUnsafeThrowingContinuation { transport.waitUntilWritable(.continuation($0)) }
            case .dropped:
                throw transport.sendFailure
            }
            return
        }
        let transport = self.transport
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
            transport.eventLoop.execute {
                let transport = transport.value
                switch transport.send(opcode, payload) {
                case .sent: continuation.resume()
                case .buffered: transport.waitUntilWritable(.continuation(continuation))
                case .dropped: continuation.resume(throwing: transport.sendFailure)
                }
            }
        }
    }

    /// Runs `body` with the transport on the connection's event loop.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable (any WebSocketTransport) throws -> T) async throws -> T {
        if eventLoop.inEventLoop { return try body(transport.value) }
        let transport = self.transport
        return try await eventLoop.submit { try body(transport.value) }.get()
    }

    /// Sends a ping (payload at most 125 bytes, unique among this connection's pings waiting
    /// for a pong) and waits for the pong that carries its payload (RFC 6455 §5.5.3).
    /// - Returns: the round-trip time.
    /// - Throws: ``WebSocketError/pingTimeout`` when no pong came within
    ///   ``WebSocketConfiguration/pongTimeout``, ``WebSocketError/closed(_:)`` when the connection
    ///   is closing or closes first, ``WebSocketError/invalidSend(_:)`` for a payload over 125
    ///   bytes or one already waiting.
    @discardableResult
    public func ping(_ payload: ByteBuffer = WebSocketConnection.nextPingPayload()) async throws -> Duration {
        let transport = self.transport
        return try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Duration, any Error>) in
            if transport.eventLoop.inEventLoop {
                transport.value.pingForRoundTrip(payload, continuation)
            } else {
                transport.eventLoop.execute { transport.value.pingForRoundTrip(payload, continuation) }
            }
        }
    }

    /// A fresh 8-byte payload for ``ping(_:)``.
    public static func nextPingPayload() -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(UInt64.random(in: .min ... .max))
        return payload
    }

    /// Starts the closing handshake and waits until the connection is over (at most the close
    /// timeout). Does nothing more if the connection is already closing.
    /// - Throws: ``WebSocketError/invalidSend(_:)`` for a code that may not be sent or a reason over 123 bytes.
    @discardableResult
    public func close(code: CloseCode = .normalClosure, reason: String = "") async throws -> CloseFrame {
        try await onLoop { try $0.close(code: code, reason: reason) }
        return await waitForClose()
    }

    /// Starts the closing handshake without waiting (from any thread).
    func startClose(code: CloseCode) {
        let transport = self.transport
        if eventLoop.inEventLoop {
            try? transport.value.close(code: code, reason: "")
        } else {
            eventLoop.execute { try? transport.value.close(code: code, reason: "") }
        }
    }

    /// Waits until the connection is over and returns its close code and reason.
    public func waitForClose() async -> CloseFrame {
        if let frame = closeFrame { return frame }
        let transport = self.transport
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<CloseFrame, Never>) in
            if transport.eventLoop.inEventLoop {
                transport.value.whenClosed { continuation.resume(returning: $0) }
            } else {
                transport.eventLoop.execute {
                    transport.value.whenClosed { continuation.resume(returning: $0) }
                }
            }
        }
    }
}

/// The async sequence of a connection's received messages (single consumer).
public struct WebSocketMessages: AsyncSequence, Sendable {
    /// Each element is a complete text or binary message.
    public typealias Element = WebSocketMessage
    let queue: InboundMessageQueue?
    let socket: WebSocketConnection

    /// The iterator of a connection's messages; one per connection (single consumer).
    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: InboundMessageQueue?
        let socket: WebSocketConnection

        /// The next message, waiting for it; nil once the connection closed and every received message was
        /// read (a callback connection's sequence ends at its close without messages).
        /// - Throws: ``WebSocketError/closed(_:)`` once, when the connection failed (a protocol violation
        ///   by the peer, with the close code and reason sent to it); the sequence then ends.
        public mutating func next() async throws -> WebSocketMessage? {
            guard let queue else {
                _ = await socket.waitForClose()
                return nil
            }
            return try await queue.next()
        }
    }

    /// The iterator; iterate a connection's messages from one task only.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(queue: queue, socket: socket) }
}
