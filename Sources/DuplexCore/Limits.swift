/// Size limits that bound the memory a peer can make a connection use.
///
/// A limit is checked from a frame's header, before its payload is buffered, so a peer
/// that announces a huge frame is refused at once (close code 1009).
public struct Limits: Sendable, Hashable {
    /// Largest payload of a single frame, in bytes. Default: 16 MiB.
    public var maxFrameSize: Int
    /// Largest message (all fragments reassembled, after decompression), in bytes. Default: 16 MiB,
    /// the largest message Autobahn's 9.x cases send.
    public var maxMessageSize: Int

    public init(maxFrameSize: Int = 16 << 20, maxMessageSize: Int = 16 << 20) {
        precondition(maxFrameSize > 0 && maxMessageSize > 0, "limits must be positive")
        self.maxFrameSize = maxFrameSize
        self.maxMessageSize = maxMessageSize
    }

    public static let `default` = Limits()
}
