import NIOCore

/// The code and reason of a close frame (RFC 6455 §5.5.1).
public struct CloseFrame: Sendable, Hashable, CustomStringConvertible {
    /// The status code; nil when the close frame had an empty payload (reported as 1005).
    public var code: CloseCode?
    /// The reason, valid UTF-8, at most 123 bytes.
    public var reason: String

    /// A close frame's contents; `code` nil stands for a frame with an empty payload.
    public init(code: CloseCode?, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    /// The code and the quoted reason, e.g. `1001 (going away) "restart"`; `no status` without a code.
    public var description: String {
        (code?.description ?? "no status") + (reason.isEmpty ? "" : " \"\(reason)\"")
    }
}

/// What a ``Connection`` makes of received bytes.
public enum ConnectionEvent: Sendable, Hashable {
    /// A complete text message (reassembled, decoded by extensions); its bytes are valid UTF-8.
    case text(ByteBuffer)
    /// A complete binary message (reassembled, decoded by extensions).
    case binary(ByteBuffer)
    /// A ping; the pong is already queued when automatic pongs are on.
    case ping(ByteBuffer)
    /// A pong.
    case pong(ByteBuffer)
    /// The peer's close frame. If this side had not closed yet, the echo is already queued and
    /// the connection is now ``ConnectionState/closed``.
    case close(CloseFrame)
    /// The peer broke the protocol or a limit. The close frame with the error's close code is
    /// already queued; the connection accepts nothing more.
    case failed(ProtocolError)
}

/// The closing handshake's states (RFC 6455 §7).
public enum ConnectionState: Sendable, Hashable {
    /// Data flows both ways.
    case open
    /// This side sent a close frame and waits for the peer's.
    case closing
    /// Both close frames were exchanged, or the connection failed: only closing the transport is left.
    case closed
}

/// Why an intent to send was refused. These are errors of the caller, not of the peer.
public enum SendError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The connection has sent its close frame; nothing more may be sent.
    case notOpen
    /// Ping, pong and close payloads are limited to 125 bytes.
    case controlPayloadTooLong(Int)
    /// A close code that may not be sent (1005, 1006, 1015, reserved ranges).
    case invalidCloseCode(CloseCode)
    /// A close reason over 123 bytes of UTF-8.
    case closeReasonTooLong(Int)
    /// A fragment size of zero or less.
    case invalidFragmentSize(Int)
    /// A negotiated extension could not encode the message.
    case extensionFailed(ExtensionError)
    /// ``Connection/ping(_:at:)`` with `limit` application pings already waiting for their pong.
    case tooManyOutstandingPings(limit: Int)
    /// ``Connection/ping(_:at:)`` with the payload of a ping that is still waiting for its pong
    /// (the pong could not tell them apart).
    case duplicatePingPayload

    /// A one-line explanation of the refusal, for logs and error messages.
    public var description: String {
        switch self {
        case .notOpen: "the connection is closing or closed"
        case .controlPayloadTooLong(let n): "control frame payload of \(n) bytes (at most 125)"
        case .invalidCloseCode(let code): "close code \(code) may not be sent"
        case .closeReasonTooLong(let n): "close reason of \(n) bytes (at most 123)"
        case .invalidFragmentSize(let n): "fragment size \(n) must be positive"
        case .extensionFailed(let e): "extension failed: \(e)"
        case .tooManyOutstandingPings(let limit): "\(limit) pings are already waiting for their pong"
        case .duplicatePingPayload: "a ping with the same payload is already waiting for its pong"
        }
    }
}
