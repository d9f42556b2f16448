import NIOCore

/// A ping or pong that a connection received, as shown to a ``WebSocketConfiguration/onControlFrame``
/// observer.
public enum ReceivedControlFrame: Sendable, Hashable {
    /// A ping from the peer, with its payload (at most 125 bytes). With
    /// ``WebSocketConfiguration/autoPong`` on (the default) its pong is already queued.
    case ping(ByteBuffer)
    /// A pong from the peer, with its payload: the answer to one of this side's pings, or an
    /// unsolicited heartbeat.
    case pong(ByteBuffer)
}
