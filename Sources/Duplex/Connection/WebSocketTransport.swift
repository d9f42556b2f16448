import DuplexCore
import NIOCore

/// The seam between the public connection API (``WebSocketConnection`` and ``EventLoopWebSocket``) and
/// whatever carries a connection.
///
/// Today one implementation exists: ``ConnectionDriver``, which runs RFC 6455 framing through a
/// DuplexCore `Connection` over any byte stream (a ``FrameSink``: a TCP or TLS channel, an HTTP/2
/// stream). The HTTP fallback sessions (SSE, long-polling) run a ``ConnectionDriver`` too, over
/// a ``FrameSink`` of their own (`HTTPSession`, see docs/architecture.md); a transport that
/// cannot would implement this protocol directly, and the application code would not change.
///
/// Every requirement is called on ``eventLoop`` only.
protocol WebSocketTransport: AnyObject {
    /// The event loop the connection lives on.
    var eventLoop: any EventLoop { get }

    /// Sends a data message. Past the outbound hard limit, applies the backpressure policy.
    func send(_ opcode: Opcode, _ payload: ByteBuffer) -> SendResult

    /// Why the last send answered ``SendResult/dropped``: ``WebSocketError/dropped`` (policy)
    /// or ``WebSocketError/closed(_:)``.
    var sendFailure: WebSocketError { get }

    /// Completes `waiter` once the outbound buffer is under the low-water mark again, or fails it
    /// when the connection ends first.
    func waitUntilWritable(_ waiter: WritabilityWaiter)

    /// Sends a ping (payload at most 125 bytes).
    func ping(_ payload: ByteBuffer) throws(WebSocketError)

    /// Sends a ping whose pong resumes `continuation` with the round-trip time (or fails it
    /// after the pong timeout, or when the connection ends).
    func pingForRoundTrip(_ payload: ByteBuffer, _ continuation: UnsafeContinuation<Duration, any Error>)

    /// Starts the closing handshake; does nothing if it already started.
    /// - Throws: ``WebSocketError/invalidSend(_:)`` for a code that may not be sent or a reason over 123 bytes.
    func close(code: CloseCode, reason: String) throws(WebSocketError)

    /// Whether the outbound buffer is under the high-water mark.
    var isWritable: Bool { get }

    /// Bytes buffered for the peer and not yet taken by the transport.
    var bufferedBytes: Int { get }

    /// Calls `body` with the close result once the connection is over (at once if it is).
    func whenClosed(_ body: @escaping (CloseFrame) -> Void)

    /// Subscribes the connection to a topic of its server; false if it already was.
    func subscribe(to topic: String) throws(WebSocketError) -> Bool
    /// Unsubscribes the connection from a topic; false if it was not subscribed.
    func unsubscribe(from topic: String) -> Bool
    /// The topics the connection subscribes to.
    var topics: Set<String> { get }
    /// Publishes to a topic's subscribers but this connection; returns how many it goes to.
    func publish(_ frame: SharedFrame, to topic: String) throws(WebSocketError) -> Int
}

/// Someone waiting for the outbound buffer to drain: an async `send` or a future.
enum WritabilityWaiter {
    case continuation(UnsafeContinuation<Void, any Error>)
    case promise(EventLoopPromise<Void>)

    func succeed() {
        switch self {
        case .continuation(let continuation): continuation.resume()
        case .promise(let promise): promise.succeed()
        }
    }

    func fail(_ error: any Error) {
        switch self {
        case .continuation(let continuation): continuation.resume(throwing: error)
        case .promise(let promise): promise.fail(error)
        }
    }
}
