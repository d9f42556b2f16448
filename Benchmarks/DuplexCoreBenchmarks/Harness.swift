#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A tiny timing harness: calibrate, warm up, then interleave samples of the two contenders
/// (DuplexCore, then its peer, then DuplexCore...) so that machine noise hits both alike, and
/// report the median time per operation of each.

/// Which clock times the samples.
enum TimeSource {
    /// CPU time of this thread (the default): time the thread spends preempted by other
    /// processes is not counted, which keeps figures usable on a shared, busy machine.
    case threadCPU
    /// Monotonic wall-clock time.
    case wall
}

/// Nanoseconds from `source`.
@inline(__always)
func nowNanos(_ source: TimeSource = .wall) -> UInt64 {
    var ts = timespec()
    clock_gettime(source == .threadCPU ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A contender: `run(n)` performs the operation `n` times and returns a value derived from
/// the results (summed into the printed checksum, so the optimizer cannot drop the work).
struct Contender {
    var name: String
    var run: (Int) -> UInt64
}

/// What one operation processes, to turn a time per operation into a rate.
enum Unit {
    /// Bytes per operation; the rate is shown in GB/s (10^9 bytes per second).
    case bytes(Int)
    /// Items (frames, messages) per operation; the rate is shown in millions per second.
    case items(Int, String)

    func rate(nanosPerOp: Double) -> Double {
        switch self {
        case .bytes(let n): Double(n) / nanosPerOp  // bytes per ns = GB/s
        case .items(let n, _): Double(n) / nanosPerOp * 1e3  // items per ns * 1e3 = millions per s
        }
    }

    func format(_ rate: Double) -> String {
        switch self {
        case .bytes: formatFixed(rate, digits: 2) + " GB/s"
        case .items(_, let name): formatFixed(rate, digits: 2) + " M " + name + "/s"
        }
    }
}

struct Settings {
    /// Interleaved samples per contender; the median is reported.
    var samples = 15
    /// Target duration of one sample.
    var sampleNanos: UInt64 = 20_000_000
    /// Warm-up per contender before sampling.
    var warmupNanos: UInt64 = 200_000_000
    /// Only run benchmarks whose name contains this.
    var filter: String?
    var timeSource = TimeSource.threadCPU
}

struct Comparison {
    var family: String
    var payload: String
    var subject: String
    var peer: String
    var unit: Unit
    var subjectNanos: Double  // median per operation
    var peerNanos: Double
    var subjectSpread: Double  // (max - min) / median over the samples
    var peerSpread: Double

    var subjectRate: Double { unit.rate(nanosPerOp: subjectNanos) }
    var peerRate: Double { unit.rate(nanosPerOp: peerNanos) }
    /// > 1: DuplexCore is faster.
    var ratio: Double { peerNanos / subjectNanos }
}

final class Harness {
    let settings: Settings
    private(set) var results: [Comparison] = []
    private(set) var checksum: UInt64 = 0

    init(settings: Settings) { self.settings = settings }

    func shouldRun(_ name: String) -> Bool {
        guard let filter = settings.filter else { return true }
        return name.lowercased().contains(filter.lowercased())
    }

    /// Times one sample of `n` operations.
    private func sample(_ contender: Contender, _ n: Int) -> UInt64 {
        let start = nowNanos(settings.timeSource)
        let value = contender.run(n)
        let elapsed = nowNanos(settings.timeSource) &- start
        checksum &+= value
        return max(elapsed, 1)
    }

    /// The number of operations that makes one sample last about `settings.sampleNanos`.
    private func calibrate(_ contender: Contender) -> Int {
        var n = 1
        while true {
            let t = sample(contender, n)
            if t >= settings.sampleNanos / 4 || n >= 1 << 40 {
                let scaled = Double(n) * Double(settings.sampleNanos) / Double(t)
                return max(1, Int(scaled.rounded()))
            }
            n *= 2
        }
    }

    private func warmUp(_ contender: Contender, _ n: Int) {
        let start = nowNanos()
        while nowNanos() &- start < settings.warmupNanos { _ = sample(contender, n) }
    }

    /// Measures DuplexCore (`subject`) against its peer on the same input.
    func compare(family: String, payload: String, unit: Unit, subject: Contender, peer: Contender) {
        guard shouldRun("\(family): \(subject.name) vs \(peer.name) [\(payload)]") else { return }
        let nSubject = calibrate(subject)
        let nPeer = calibrate(peer)
        warmUp(subject, nSubject)
        warmUp(peer, nPeer)
        var subjectTimes: [Double] = []
        var peerTimes: [Double] = []
        for _ in 0..<settings.samples {
            subjectTimes.append(Double(sample(subject, nSubject)) / Double(nSubject))
            peerTimes.append(Double(sample(peer, nPeer)) / Double(nPeer))
        }
        let result = Comparison(
            family: family, payload: payload, subject: subject.name, peer: peer.name, unit: unit,
            subjectNanos: median(subjectTimes), peerNanos: median(peerTimes),
            subjectSpread: spread(subjectTimes), peerSpread: spread(peerTimes))
        results.append(result)
        print(
            pad("\(family) [\(payload)]", 40), pad(unit.format(result.subjectRate), 17), "vs", pad(unit.format(result.peerRate), 17),
            pad(formatFixed(result.ratio, digits: 2) + "x", 7),
            "\(subject.name) vs \(peer.name); spread \(formatFixed(result.subjectSpread * 100, digits: 0))% / \(formatFixed(result.peerSpread * 100, digits: 0))%")
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

func spread(_ values: [Double]) -> Double {
    guard let lo = values.min(), let hi = values.max() else { return 0 }
    return (hi - lo) / median(values)
}

/// Fixed-point formatting without Foundation.
func formatFixed(_ value: Double, digits: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    let frac = Int(scaled - Double(whole) * scale)
    var text = (value < 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let f = String(frac)
        text += "." + String(repeating: "0", count: digits - f.count) + f
    }
    return text
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}
