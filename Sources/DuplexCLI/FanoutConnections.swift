import DuplexCore
import NIOCore

/// `duplex bench fanout`'s subscriber: sends nothing; every message's `t=` gives its latency
/// (now − t, CLOCK_REALTIME) and its `s=` goes through the connection's ``SequenceTracker``.
final class SubscriberConnection: BenchConnection {
    private let fanout: FanoutLoop
    private(set) var tracker = SequenceTracker()

    init(endpoint: BenchEndpoint, loop: FanoutLoop, upgraded: EventLoopPromise<Void>, eventLoop: any EventLoop) {
        self.fanout = loop
        super.init(endpoint: endpoint, loop: loop, upgraded: upgraded, eventLoop: eventLoop)
    }

    override func received(_ message: ByteBuffer) {
        guard let stamp = FanoutPayload.parse(message) else {
            fanout.counts.untimed += 1
            return
        }
        fanout.record(now: BenchClock.realtime(), sent: stamp.microseconds &* 1000)
        if let sequence = stamp.sequence { fanout.counts.count(tracker.observe(sequence)) }
    }

    /// Counted by code whenever it happens (a slow subscriber's 1013 is what a fan-out run is
    /// looking for), not as an error.
    override func closedByServer(_ code: UInt16) {
        fanout.serverCloses[code, default: 0] += 1
        fanout.closedNext.append(tracker.next)
    }
}

/// How the publisher publishes.
struct PublishWorkload: Sendable {
    /// Messages per second.
    var rate: Double
    /// Bytes per message.
    var size: Int
}

/// `duplex bench fanout`'s publisher: text messages on a fixed schedule (open loop), message k
/// due at start + k / rate and stamped with that intended time, not the time it actually left,
/// so that queueing anywhere shows in the latencies. When it is late it sends the overdue
/// messages back to back and remembers by how much it was late. While over 64 MiB are queued
/// unsent (the server stopped reading), due messages are skipped (and not numbered). Whatever
/// comes back is counted.
final class PublisherConnection: BenchConnection {
    static let maxQueued = 64 << 20

    private let workload: PublishWorkload
    private(set) var stats = PublisherStats()
    private var start: UInt64 = 0
    private var realtimeStart: UInt64 = 0
    private var windowStart: UInt64 = 0
    private var end: UInt64 = 0
    /// Index in the schedule of the next message due (sent or skipped).
    private var slot: UInt64 = 0
    private var timer: Scheduled<Void>?

    init(endpoint: BenchEndpoint, workload: PublishWorkload, loop: PublisherLoop, upgraded: EventLoopPromise<Void>,
         eventLoop: any EventLoop) {
        self.workload = workload
        super.init(endpoint: endpoint, loop: loop, upgraded: upgraded, eventLoop: eventLoop)
    }

    override func opened() {
        (loop as? PublisherLoop)?.publisher = self
    }

    /// Publishes from `start` (monotonic ns; `realtime` is the same instant on CLOCK_REALTIME)
    /// until `end`; messages due from `windowStart` on count as sent in the window.
    func publish(start: UInt64, realtime: UInt64, windowStart: UInt64, end: UInt64) {
        self.start = start
        self.realtimeStart = realtime
        self.windowStart = windowStart
        self.end = end
        schedule()
    }

    @inline(__always)
    private func due(_ slot: UInt64) -> UInt64 {
        start &+ UInt64((Double(slot) * 1e9 / workload.rate).rounded())
    }

    private func schedule() {
        guard let context else { return finish() }
        let next = due(slot)
        guard next < end else { return finish() }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(next)) { [self] in
            tick()
        }
    }

    private func tick() {
        let now = BenchClock.now()
        let overloaded = ((try? context?.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0) > Self.maxQueued
        while true {
            let intended = due(slot)
            guard intended <= now, intended < end else { break }
            slot += 1
            stats.lateMax = max(stats.lateMax, now - intended)
            if overloaded {
                stats.skipped += 1
                continue
            }
            let stamp = (realtimeStart &+ (intended - start)) / 1000
            guard send(.text, FanoutPayload.make(microseconds: stamp, sequence: stats.sent, size: workload.size)) else {
                return finish()
            }
            stats.sent += 1
            if intended >= windowStart { stats.sentInWindow += 1 }
        }
        flush()
        schedule()
    }

    private func finish() {
        timer = nil
        stats.finished = true
    }

    override func received(_ message: ByteBuffer) {
        stats.received += 1
    }

    override func closedByServer(_ code: UInt16) {
        stats.closedByServer = code
        super.closedByServer(code)
    }

    override func close() -> EventLoopFuture<Void> {
        timer?.cancel()
        finish()
        return super.close()
    }
}

/// The publisher's loop: the publisher, also once the server has closed it.
final class PublisherLoop: BenchLoop {
    var publisher: PublisherConnection?
}
