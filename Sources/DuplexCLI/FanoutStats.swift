import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The payload of a fan-out message, the format of wsload's `publish` and `subscribe`:
/// `t=<µs since the epoch, CLOCK_REALTIME> s=<sequence number> `, padded with `x` to the message
/// size (a size below the prefix's length gives the prefix alone). `s=` is optional when parsing.
enum FanoutPayload {
    struct Stamp: Sendable, Hashable {
        var microseconds: UInt64
        var sequence: UInt64?
    }

    static func make(microseconds: UInt64, sequence: UInt64, size: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(max(size, 48))
        buffer.writeStaticString("t=")
        writeDecimal(microseconds, to: &buffer)
        buffer.writeStaticString(" s=")
        writeDecimal(sequence, to: &buffer)
        buffer.writeInteger(UInt8(ascii: " "))
        if buffer.readableBytes < size {
            buffer.writeRepeatingByte(UInt8(ascii: "x"), count: size - buffer.readableBytes)
        }
        return buffer
    }

    /// The stamp at the start of `payload`, or nil when it does not start with `t=<digits>`
    /// followed by a space or the end.
    static func parse(_ payload: ByteBuffer) -> Stamp? {
        payload.withUnsafeReadableBytes { bytes -> Stamp? in
            var i = 0
            func number(after first: UInt8) -> UInt64? {
                guard i + 1 < bytes.count, bytes[i] == first, bytes[i + 1] == UInt8(ascii: "=") else { return nil }
                i += 2
                var value: UInt64 = 0
                let start = i
                while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57, i - start < 19 {
                    value = value * 10 + UInt64(bytes[i] - 48)
                    i += 1
                }
                guard i > start, i == bytes.count || bytes[i] == UInt8(ascii: " ") else { return nil }
                i += 1
                return value
            }
            guard let microseconds = number(after: UInt8(ascii: "t")) else { return nil }
            return Stamp(microseconds: microseconds, sequence: number(after: UInt8(ascii: "s")))
        }
    }

    private static func writeDecimal(_ value: UInt64, to buffer: inout ByteBuffer) {
        var digits = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: digits) { bytes in
            var rest = value
            for i in stride(from: digits - 1, through: 0, by: -1) {
                bytes[i] = UInt8(48 + rest % 10)
                rest /= 10
            }
            return digits
        }
    }
}

/// One subscriber's sequence numbers: the publisher numbers its messages 0, 1, 2, ...; each
/// number a subscriber has not received is missing (a loss) until it arrives late.
struct SequenceTracker: Sendable {
    enum Outcome: Sendable, Hashable {
        /// The next number.
        case inOrder
        /// A jump forward: `missing` numbers were skipped (one gap).
        case gap(missing: UInt64)
        /// A number that was missing arrived after a later one (reordered; no longer lost).
        case late
        /// A number received before (or older than the ones remembered as missing).
        case duplicate
    }

    /// The missing numbers remembered per connection, to tell a late arrival from a duplicate.
    static let maxHoles = 4096

    /// The number expected next: one past the highest received.
    private(set) var next: UInt64 = 0
    private(set) var received: UInt64 = 0
    private var holes: Set<UInt64> = []
    /// More were missing than `maxHoles`: older late arrivals count as duplicates.
    private var forgot = false

    mutating func observe(_ sequence: UInt64) -> Outcome {
        received &+= 1
        if sequence == next {
            next += 1
            return .inOrder
        }
        if sequence > next {
            let missing = sequence - next
            if !forgot, UInt64(holes.count) + missing <= UInt64(Self.maxHoles) {
                for hole in next..<sequence { holes.insert(hole) }
            } else {
                forgot = true
            }
            next = sequence + 1
            return .gap(missing: missing)
        }
        return holes.remove(sequence) != nil ? .late : .duplicate
    }

    /// The numbers below `published` not received after the highest one received: the tail
    /// that never came (all of them for a subscriber that received nothing).
    func tail(published: UInt64) -> UInt64 {
        published > next ? published - next : 0
    }
}

/// The loss accounting of a group of subscribers.
struct FanoutCounts: Sendable {
    /// Numbers skipped and not (yet) arrived late, plus, at the end, the tails.
    var losses: UInt64 = 0
    var gaps = 0
    var reordered = 0
    var duplicates = 0
    /// Messages without a `t=` stamp.
    var untimed = 0
    /// Numbers published after a subscriber was closed by the server (not in `losses`).
    var lostAfterClose: UInt64 = 0

    mutating func count(_ outcome: SequenceTracker.Outcome) {
        switch outcome {
        case .inOrder: break
        case .gap(let missing):
            gaps += 1
            losses += missing
        case .late:
            reordered += 1
            losses -= 1
        case .duplicate:
            duplicates += 1
        }
    }

    mutating func merge(_ other: FanoutCounts) {
        losses += other.losses
        gaps += other.gaps
        reordered += other.reordered
        duplicates += other.duplicates
        untimed += other.untimed
        lostAfterClose += other.lostAfterClose
    }
}

/// What the subscribers of one loop (or all of them, merged) saw.
struct FanoutSnapshot: Sendable {
    /// Latencies of the warm-up, or of the counted window once it has begun.
    var histogram = LatencyHistogram()
    /// Deliveries of the warm-up, or of the counted window once it has begun.
    var deliveries = 0
    /// Deliveries over the whole run.
    var delivered: UInt64 = 0
    var seconds = 0.0
    var counts = FanoutCounts()
    var serverCloses: [UInt16: Int] = [:]
    var errors = BenchErrors()
    var open = 0

    mutating func merge(_ other: FanoutSnapshot) {
        histogram.merge(other.histogram)
        deliveries += other.deliveries
        delivered += other.delivered
        seconds = max(seconds, other.seconds)
        counts.merge(other.counts)
        serverCloses.merge(other.serverCloses, uniquingKeysWith: +)
        errors.merge(other.errors)
        open += other.open
    }

    static func merged(_ parts: [FanoutSnapshot]) -> FanoutSnapshot {
        var all = FanoutSnapshot()
        for part in parts { all.merge(part) }
        return all
    }
}

/// One event loop's subscribers: latencies and deliveries of the warm-up and of the counted
/// window, losses, the server's closes by code.
///
/// A delivery belongs to the warm-up or the window by the time it is read (CLOCK_REALTIME, read
/// for its latency anyway), not by when the loop hears of the window's edges: a loop that lags
/// behind still counts exactly the window's deliveries.
final class FanoutLoop: BenchLoop {
    /// Whether deliveries are recorded (from the first message published on).
    var measuring = false
    /// The counted window, CLOCK_REALTIME nanoseconds: [windowFrom, windowTo).
    private(set) var windowFrom = UInt64.max
    private(set) var windowTo = UInt64.max
    var warmup = (histogram: LatencyHistogram(), deliveries: 0)
    var window = (histogram: LatencyHistogram(), deliveries: 0)
    var delivered: UInt64 = 0
    var counts = FanoutCounts()
    var serverCloses: [UInt16: Int] = [:]
    /// The `next` of each subscriber the server closed.
    var closedNext: [UInt64] = []

    func start(windowFrom: UInt64, windowTo: UInt64) {
        self.windowFrom = windowFrom
        self.windowTo = windowTo
        measuring = true
        running = true
    }

    /// Records one delivery read at `now` (CLOCK_REALTIME ns) of a message stamped `sent`.
    @inline(__always)
    func record(now: UInt64, sent: UInt64) {
        delivered &+= 1
        guard measuring, now < windowTo else { return }
        let latency = now > sent ? now - sent : 0
        if now >= windowFrom {
            window.deliveries &+= 1
            window.histogram.record(latency)
        } else {
            warmup.deliveries &+= 1
            warmup.histogram.record(latency)
        }
    }

    /// The counted window, once it is over.
    func endWindow() -> FanoutSnapshot {
        var snapshot = progress()
        snapshot.seconds = windowTo > windowFrom && windowTo != .max ? Double(windowTo - windowFrom) / 1e9 : 0
        return snapshot
    }

    /// What was seen so far: the window's latencies and deliveries once it has begun, else the warm-up's.
    func progress() -> FanoutSnapshot {
        let phase = window.deliveries > 0 ? window : warmup
        return FanoutSnapshot(histogram: phase.histogram, deliveries: phase.deliveries, delivered: delivered, counts: counts,
                              serverCloses: serverCloses, errors: errors, open: connections.count)
    }

    private var subscribers: some Sequence<SubscriberConnection> {
        connections.values.lazy.compactMap { $0 as? SubscriberConnection }
    }

    /// Whether every open subscriber has received up to number `published - 1`.
    func caughtUp(published: UInt64) -> Bool {
        subscribers.allSatisfy { $0.tracker.tail(published: published) == 0 }
    }

    /// The accounting at the end, once `published` messages were published: the open
    /// subscribers' tails are losses, the closed ones' lost after the close.
    func finish(published: UInt64) -> FanoutSnapshot {
        running = false
        measuring = false
        var snapshot = progress()
        for subscriber in subscribers { snapshot.counts.losses += subscriber.tracker.tail(published: published) }
        for next in closedNext where published > next { snapshot.counts.lostAfterClose += published - next }
        return snapshot
    }
}

/// The publisher's side of a run.
struct PublisherStats: Sendable {
    /// Messages sent (numbered 0..<sent).
    var sent: UInt64 = 0
    /// Messages sent in the counted window.
    var sentInWindow: UInt64 = 0
    /// Messages not sent because over 64 MiB were queued unsent (not numbered).
    var skipped: UInt64 = 0
    /// The most a message left after its intended send time, in nanoseconds.
    var lateMax: UInt64 = 0
    /// Messages that came back to the publisher (an endpoint that sends the sender its own).
    var received: UInt64 = 0
    /// The code the server closed the publisher with, if it did.
    var closedByServer: UInt16?
    var finished = false
}

extension BenchClock {
    /// CLOCK_REALTIME in nanoseconds since the epoch (the clock of the payloads' `t=`).
    @inline(__always)
    static func realtime() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
