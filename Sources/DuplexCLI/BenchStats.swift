import NIOCore

/// A latency histogram with about 1 % precision (128 linear buckets below 128 ns, then 64
/// buckets per power of two), constant memory and O(1) recording: cheap enough to record
/// every round trip of a load run.
struct LatencyHistogram: Sendable {
    private static let octaves = 58
    private var buckets = [Int](repeating: 0, count: 128 + octaves * 64)
    private(set) var count = 0
    private(set) var min = UInt64.max
    private(set) var max: UInt64 = 0
    private(set) var sum: UInt64 = 0

    @inline(__always)
    static func index(of value: UInt64) -> Int {
        if value < 128 { return Int(value) }
        let msb = 63 - value.leadingZeroBitCount  // >= 7
        let shift = msb - 6  // value >> shift is in 64..<128
        return 128 + (shift - 1) * 64 + Int(truncatingIfNeeded: value >> UInt64(shift)) - 64
    }

    /// The middle of bucket `index`'s range.
    static func value(at index: Int) -> UInt64 {
        if index < 128 { return UInt64(index) }
        let k = index - 128
        let shift = UInt64(k / 64 + 1)
        let low = UInt64(64 + k % 64) << shift
        return low + (UInt64(1) << shift) / 2
    }

    @inline(__always)
    mutating func record(_ nanoseconds: UInt64) {
        buckets[Self.index(of: nanoseconds)] &+= 1
        count &+= 1
        sum &+= nanoseconds
        if nanoseconds < min { min = nanoseconds }
        if nanoseconds > max { max = nanoseconds }
    }

    mutating func merge(_ other: LatencyHistogram) {
        for i in buckets.indices { buckets[i] &+= other.buckets[i] }
        count += other.count
        sum &+= other.sum
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
    }

    /// The value at `quantile` (0...1), in nanoseconds; the exact maximum for 1.
    func percentile(_ quantile: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        if quantile >= 1 { return max }
        let rank = Swift.max(1, Int((Double(count) * quantile).rounded(.up)))
        var seen = 0
        for (i, n) in buckets.enumerated() where n > 0 {
            seen += n
            if seen >= rank { return Swift.min(Swift.max(Self.value(at: i), min), max) }
        }
        return max
    }

    var mean: Double { count > 0 ? Double(sum) / Double(count) : 0 }
}

/// What went wrong during a run, by kind.
struct BenchErrors: Sendable {
    var connect = 0
    var handshake = 0
    var protocolErrors = 0
    /// Connections that ended while the run was still going.
    var closedEarly = 0
    /// Echoes whose size was not the size sent.
    var mismatched = 0

    var total: Int { connect + handshake + protocolErrors + closedEarly + mismatched }

    mutating func merge(_ other: BenchErrors) {
        connect += other.connect
        handshake += other.handshake
        protocolErrors += other.protocolErrors
        closedEarly += other.closedEarly
        mismatched += other.mismatched
    }

    var description: String {
        var parts: [String] = []
        if connect > 0 { parts.append("\(connect) connect") }
        if handshake > 0 { parts.append("\(handshake) handshake") }
        if protocolErrors > 0 { parts.append("\(protocolErrors) protocol") }
        if closedEarly > 0 { parts.append("\(closedEarly) closed early") }
        if mismatched > 0 { parts.append("\(mismatched) wrong echo size") }
        return parts.isEmpty ? "0" : "\(total) (" + parts.joined(separator: ", ") + ")"
    }
}

/// The result of one event loop's share of a run.
struct BenchSnapshot: Sendable {
    var histogram = LatencyHistogram()
    var messages = 0
    var seconds = 0.0
    var errors = BenchErrors()
    var open = 0

    mutating func merge(_ other: BenchSnapshot) {
        histogram.merge(other.histogram)
        messages += other.messages
        seconds = max(seconds, other.seconds)
        errors.merge(other.errors)
        open += other.open
    }
}

/// One event loop's share of a run: its connections, whether they send, whether round trips
/// are recorded. Used only on its event loop (reached through `NIOLoopBound`).
final class BenchLoopState {
    var histogram = LatencyHistogram()
    var messages = 0
    var errors = BenchErrors()
    var recording = false
    var running = false
    var recordStart: UInt64 = 0
    var recordEnd: UInt64 = 0
    var handlers: [ObjectIdentifier: BenchConnectionHandler] = [:]

    /// Every open connection starts its round trips.
    func start() {
        running = true
        for handler in handlers.values { handler.startSending() }
    }

    func startRecording() {
        histogram = LatencyHistogram()
        messages = 0
        recordStart = BenchClock.now()
        recording = true
    }

    /// Stops recording and sending; returns what was recorded.
    func stop() -> BenchSnapshot {
        if recording {
            recording = false
            recordEnd = BenchClock.now()
        }
        running = false
        let seconds = recordEnd > recordStart ? Double(recordEnd - recordStart) / 1e9 : 0
        return BenchSnapshot(histogram: histogram, messages: messages, seconds: seconds, errors: errors,
                             open: handlers.count)
    }

    /// Starts the closing handshake on every connection; returns their close futures.
    func closeAll() -> [EventLoopFuture<Void>] {
        running = false
        return handlers.values.map { $0.close() }
    }

    func forceCloseAll() {
        for handler in handlers.values { handler.forceClose() }
    }
}

enum BenchClock {
    /// Monotonic nanoseconds (clock_gettime through the vDSO: no system call).
    @inline(__always)
    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
}
