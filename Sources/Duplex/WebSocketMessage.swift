import DuplexCore
import NIOCore

/// A complete WebSocket data message.
public enum WebSocketMessage: Sendable, Hashable {
    /// A text message (valid UTF-8).
    case text(String)
    /// A binary message.
    case binary(ByteBuffer)

    /// The message's bytes (UTF-8 for text).
    public var bytes: ByteBuffer {
        switch self {
        case .text(let string): ByteBuffer(string: string)
        case .binary(let buffer): buffer
        }
    }
}

/// A received data message as raw bytes, for the event-loop callback API: no conversion to
/// `String` unless asked for, so an echo or a relay can pass the bytes on untouched.
public struct WebSocketData: Sendable, Hashable {
    /// True for a text message (its bytes are valid UTF-8), false for binary.
    public var isText: Bool
    /// The message's payload (UTF-8 for text), as received.
    public var bytes: ByteBuffer

    /// A message of these bytes; for text, `bytes` must be valid UTF-8.
    public init(isText: Bool, bytes: ByteBuffer) {
        self.isText = isText
        self.bytes = bytes
    }

    /// The text of a text message; nil for binary.
    public var text: String? { isText ? String(buffer: bytes) : nil }

    /// The message as a ``WebSocketMessage``.
    public var message: WebSocketMessage { isText ? .text(String(buffer: bytes)) : .binary(bytes) }
}

/// What the event-loop API's send did with a message.
public enum SendResult: Sendable, Hashable {
    /// Written; the outbound buffer is under the high-water mark.
    case sent
    /// Written, but the outbound buffer is over the high-water mark: wait for `onDrain`.
    case buffered
    /// Not written: the outbound hard limit would be passed (see ``WebSocketConfiguration/backpressurePolicy``)
    /// or the connection is closing.
    case dropped
}

/// Errors of the network layer.
public enum WebSocketError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The connection is closing or closed; nothing more can be sent.
    case closed(CloseFrame)
    /// The message was dropped by the backpressure policy.
    case dropped
    /// The opening handshake failed.
    case handshakeFailed(HandshakeError)
    /// The opening handshake did not finish in time.
    case handshakeTimeout
    /// The connection closed before the handshake completed.
    case connectionClosedDuringHandshake
    /// A URL the client cannot use.
    case invalidURL(String)
    /// The proxy refused the CONNECT request.
    case proxyFailed(String)
    /// A send was refused by the protocol rules (payload too long for a ping, bad close code...).
    case invalidSend(SendError)
    /// Topics exist on server connections only.
    case topicsUnavailable
    /// No pong answered the ping within the pong timeout.
    case pingTimeout

    /// A one-line explanation of the error, for logs.
    public var description: String {
        switch self {
        case .closed(let frame): "the connection is closed (\(frame))"
        case .dropped: "the message was dropped: the peer reads too slowly"
        case .handshakeFailed(let error): "handshake failed: \(error)"
        case .handshakeTimeout: "handshake timed out"
        case .connectionClosedDuringHandshake: "the connection closed during the handshake"
        case .invalidURL(let reason): "invalid URL: \(reason)"
        case .proxyFailed(let reason): "proxy: \(reason)"
        case .invalidSend(let error): error.description
        case .topicsUnavailable: "topics exist on server connections only"
        case .pingTimeout: "no pong within the pong timeout"
        }
    }
}
