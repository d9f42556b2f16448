/// Outbound backpressure of one connection: the hard limit on buffered bytes, the senders
/// waiting for the buffer to drain, and whether a drain must be reported to callbacks.
///
/// The water marks themselves live in the transport (NIO turns a channel unwritable over the
/// high mark and writable again under the low one); this type decides with them.
struct OutboundFlow {
    let highWaterMark: Int
    let hardLimit: Int
    /// Whether the transport applies ``highWaterMark`` (see ``overHardLimit(adding:sink:)``).
    var highWaterMarkApplied = false
    /// Async senders and futures waiting for the buffer to drain.
    private(set) var waiters: [WritabilityWaiter] = []
    /// A send answered ``SendResult/buffered`` since the last drain: the next drain is reported.
    var drainOwed = false

    init(configuration: WebSocketConfiguration) {
        highWaterMark = configuration.outboundHighWaterMark
        hardLimit = configuration.outboundHardLimit
    }

    /// Whether the bytes buffered in `sink` plus `extra` exceed the hard limit.
    ///
    /// Reading the buffered byte count is a channel option look-up, too costly for every send and
    /// every read. A writable transport buffers at most its high-water mark (NIO turns it
    /// unwritable as soon as a write takes it over the mark, and writable again only under the
    /// low one), so while it is writable and the mark plus `extra` is within the hard limit, the
    /// answer is no without asking.
    func overHardLimit(adding extra: Int, sink: any FrameSink) -> Bool {
        if highWaterMarkApplied, highWaterMark <= hardLimit - extra, sink.isWritable {
            return false
        }
        return sink.bufferedBytes > hardLimit - extra
    }

    mutating func addWaiter(_ waiter: WritabilityWaiter) {
        waiters.append(waiter)
    }

    /// The buffer drained: every waiter resumes.
    mutating func drained() {
        guard !waiters.isEmpty else { return }
        let ready = waiters
        waiters = []
        for waiter in ready { waiter.succeed() }
    }

    /// The connection ended: every waiter fails with `error`.
    mutating func fail(_ error: any Error) {
        let failed = waiters
        waiters = []
        for waiter in failed { waiter.fail(error) }
    }
}
