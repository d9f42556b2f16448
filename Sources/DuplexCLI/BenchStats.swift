import Histogram
import NIOCore

/// A latency histogram in nanoseconds: HdrHistogram with 3 significant digits (a percentile is
/// within 0.1 % of the true value), constant memory and O(1) recording, cheap enough to record
/// every message of a load run. Values over an hour are recorded as an hour.
struct LatencyHistogram: Sendable {
    static let highest: UInt64 = 3_600_000_000_000
    private var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: highest, numberOfSignificantValueDigits: .three
    )
    private(set) var sum: UInt64 = 0

    var count: Int { Int(histogram.totalCount) }
    /// The exact largest value recorded (0 if none).
    var max: UInt64 { histogram.maxRecorded }
    var mean: Double { count > 0 ? Double(sum) / Double(count) : 0 }

    @inline(__always)
    mutating func record(_ nanoseconds: UInt64) {
        histogram.record(Swift.min(nanoseconds, Self.highest))
        sum &+= nanoseconds
    }

    mutating func merge(_ other: LatencyHistogram) {
        histogram.add(other.histogram)
        sum &+= other.sum
    }

    /// The value at `quantile` (0...1), in nanoseconds; the exact maximum for 1, 0 when empty.
    func percentile(_ quantile: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        if quantile >= 1 { return max }
        return histogram.valueAtPercentile(quantile * 100)
    }
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

/// The result of one event loop's share of an echo run.
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

/// One event loop's share of a run: its open connections, its errors, whether the run's
/// traffic is going. Used only on its event loop (reached through `NIOLoopBound`).
class BenchLoop {
    var errors = BenchErrors()
    var running = false
    var connections: [ObjectIdentifier: BenchConnection] = [:]

    /// Starts the closing handshake on every connection; returns their close futures.
    func closeAll() -> [EventLoopFuture<Void>] {
        running = false
        return connections.values.map { $0.close() }
    }

    func forceCloseAll() {
        for connection in connections.values { connection.forceClose() }
    }
}

/// One event loop's share of an echo run: whether its connections send, whether round trips
/// are recorded.
final class EchoLoop: BenchLoop {
    var histogram = LatencyHistogram()
    var messages = 0
    var recording = false
    var recordStart: UInt64 = 0
    var recordEnd: UInt64 = 0

    /// Every open connection starts its round trips.
    func start() {
        running = true
        for connection in connections.values { (connection as? EchoConnection)?.startSending() }
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
                             open: connections.count)
    }
}

enum BenchClock {
    /// Monotonic nanoseconds (clock_gettime through the vDSO: no system call).
    @inline(__always)
    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
}
