/// Size limits that bound the memory a peer can make a connection use.
///
/// A limit is checked from a frame's header, before its payload is buffered, so a peer
/// that announces a huge frame is refused at once (close code 1009).
public struct Limits: Sendable, Hashable {
    /// Largest payload of a single frame, in bytes. Default: 1 MiB.
    public var maxFrameSize: Int
    /// Largest message (all fragments reassembled, after decompression), in bytes. Default: 1 MiB
    /// (as python-websockets' `max_size`): with the async API's queue of 16 unread messages, one
    /// slow consumer holds at most 16 MiB of received messages.
    public var maxMessageSize: Int

    /// Limits in bytes, 1 MiB each by default; both must be positive.
    public init(maxFrameSize: Int = 1 << 20, maxMessageSize: Int = 1 << 20) {
        precondition(maxFrameSize > 0 && maxMessageSize > 0, "limits must be positive")
        self.maxFrameSize = maxFrameSize
        self.maxMessageSize = maxMessageSize
    }

    /// 1 MiB frames and messages.
    public static let `default` = Limits()

    /// 16 MiB frames and messages: the defaults before this version, and the largest message
    /// Autobahn|Testsuite's 9.x cases send. With a queue of 16 unread messages, up to 256 MiB of
    /// received messages per slow consumer: lower `inboundQueueSize` of
    /// Duplex's `WebSocketConfiguration` with it.
    public static let large = Limits(maxFrameSize: 16 << 20, maxMessageSize: 16 << 20)
}
