import NIOCore

/// The byte stream under a ``ConnectionDriver``: where its frames go, and what it learns about
/// the transport's buffer. A NIO channel (TCP, TLS) is one (``ChannelConnectionHandler``); an
/// HTTP/2 stream can be another.
///
/// Called on the driver's event loop only. The sink reports back through the driver's
/// `receive`, `readComplete`, `writabilityChanged` and `transportClosed`.
protocol FrameSink: AnyObject {
    /// Writes bytes without flushing them.
    func write(_ bytes: ByteBuffer)
    /// Flushes what was written.
    func flush()
    /// Writes `bytes` (if any), flushes, and closes the transport once they are written.
    func writeAndClose(_ bytes: ByteBuffer?)
    /// Closes the transport now, written or not (timeouts).
    func closeNow()
    /// Whether the transport's buffer is under its high-water mark.
    var isWritable: Bool { get }
    /// Bytes written and not yet taken by the transport.
    var bufferedBytes: Int { get }
    /// Asks the transport to apply these water marks to ``isWritable``; false if it cannot.
    func applyWaterMarks(low: Int, high: Int) -> Bool
    /// The driver may read again (see ``ConnectionDriver/mayRead``): issue a read that was held.
    func readIfHeld()
}
