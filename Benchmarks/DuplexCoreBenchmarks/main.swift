import DuplexCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// DuplexCore micro-benchmarks, each side by side with its peer (NIOWebSocket, or the Swift
/// standard library where NIO has no equivalent) on the same bytes in the same run.
///
/// Usage: DuplexCoreBenchmarks [--samples N] [--sample-ms MS] [--filter TEXT] [--markdown] [--wall-clock]

var settings = Settings()
var markdown = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--samples": settings.samples = Int(arguments.next() ?? "") ?? settings.samples
    case "--sample-ms": settings.sampleNanos = UInt64(Int(arguments.next() ?? "") ?? 20) * 1_000_000
    case "--filter": settings.filter = arguments.next()
    case "--markdown": markdown = true
    case "--wall-clock": settings.timeSource = .wall
    default:
        print("usage: DuplexCoreBenchmarks [--samples N] [--sample-ms MS] [--filter TEXT] [--markdown] [--wall-clock]")
        exit(2)
    }
}

let clockName = settings.timeSource == .threadCPU ? "thread CPU time" : "wall-clock time"
print("DuplexCore micro-benchmarks: DuplexCore vs peer, ratio > 1 = DuplexCore faster")
print("median of \(settings.samples) interleaved samples of ~\(settings.sampleNanos / 1_000_000) ms each (\(clockName))")
let harness = Harness(settings: settings)
runMaskingBenchmarks(harness)
runUTF8Benchmarks(harness)
runFrameParsingBenchmarks(harness)
runDeflateBenchmarks(harness)
runFanoutEncodingBenchmarks(harness)

if markdown {
    print("")
    print("| benchmark: DuplexCore vs peer | payload | DuplexCore | NIO (or stdlib) | ratio |")
    print("| --- | --- | ---: | ---: | ---: |")
    for r in harness.results {
        print("| \(r.family): \(r.subject) vs \(r.peer) | \(r.payload) | \(r.unit.format(r.subjectRate)) | \(r.unit.format(r.peerRate)) | \(formatFixed(r.ratio, digits: 2))x |")
    }
}
print("")
print("checksum: \(harness.checksum)")
