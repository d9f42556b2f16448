import ArgumentParser
import Foundation
import NIOCore
import Testing
@testable import DuplexCLI

/// `duplex bench`: its subcommands, the fan-out payload, the loss accounting, the histogram and
/// the JSON report.
@Suite struct BenchCommandTests {
    @Test func benchWithoutASubcommandIsEcho() throws {
        let plain = try DuplexCommand.parseAsRoot(["bench", "ws://127.0.0.1:9/echo", "--connections", "3", "--duration", "2"])
        let echo = try #require(plain as? BenchEcho)
        #expect(echo.url == "ws://127.0.0.1:9/echo")
        #expect(echo.connections == 3)
        #expect(echo.options.duration == 2)
        #expect(echo.options.warmup == 1)
        let named = try #require(try DuplexCommand.parseAsRoot(["bench", "echo", "ws://127.0.0.1:9/echo", "--idle", "5"]) as? BenchEcho)
        #expect(named.idle == 5)
    }

    @Test func fanoutDefaultsAndOptions() throws {
        let fanout = try #require(try DuplexCommand.parseAsRoot(["bench", "fanout", "ws://127.0.0.1:9/topics/bench"]) as? BenchFanout)
        #expect(fanout.connections == 1000)
        #expect(fanout.size == 100)
        #expect(fanout.publishURL == nil)
        #expect(fanout.options.threads == 1)
        #expect(!fanout.json)
        let custom = try #require(try DuplexCommand.parseAsRoot([
            "bench", "fanout", "ws://127.0.0.1:9/topics/a", "--publish-url", "ws://127.0.0.1:9/topics/b",
            "--connections", "20", "--rate", "200", "--size", "64", "--threads", "2", "--json",
        ]) as? BenchFanout)
        #expect(custom.publishURL == "ws://127.0.0.1:9/topics/b")
        #expect(custom.connections == 20 && custom.rate == 200 && custom.size == 64 && custom.options.threads == 2 && custom.json)
    }

    @Test(arguments: [
        ["bench", "fanout", "http://127.0.0.1:9/"],
        ["bench", "fanout", "ws://127.0.0.1:9/", "--rate", "0"],
        ["bench", "fanout", "ws://127.0.0.1:9/", "--connections", "0"],
        ["bench", "fanout", "ws://127.0.0.1:9/", "--publish-url", "https://127.0.0.1:9/"],
        ["bench", "ws://127.0.0.1:9/", "--duration", "0"],
    ])
    func invalidOptionsAreRefused(arguments: [String]) {
        #expect(throws: (any Error).self) { _ = try DuplexCommand.parseAsRoot(arguments) }
    }

    // MARK: - Payload

    @Test func payloadIsWsloadsFormatPaddedWithX() throws {
        let payload = FanoutPayload.make(microseconds: 1_764_582_000_123_456, sequence: 42, size: 100)
        let text = String(buffer: payload)
        #expect(text.count == 100)
        #expect(text.hasPrefix("t=1764582000123456 s=42 x"))
        #expect(text.drop(while: { $0 != "x" }).allSatisfy { $0 == "x" })
        #expect(FanoutPayload.parse(payload) == .init(microseconds: 1_764_582_000_123_456, sequence: 42))
        // A size below the prefix gives the prefix alone.
        #expect(String(buffer: FanoutPayload.make(microseconds: 7, sequence: 0, size: 0)) == "t=7 s=0 ")
        #expect(String(buffer: FanoutPayload.make(microseconds: 0, sequence: UInt64.max, size: 10))
                == "t=0 s=18446744073709551615 ")
    }

    @Test func payloadParsing() {
        func parse(_ s: String) -> FanoutPayload.Stamp? { FanoutPayload.parse(ByteBuffer(string: s)) }
        #expect(parse("t=123 s=4 xxxx") == .init(microseconds: 123, sequence: 4))
        #expect(parse("t=123 s=4") == .init(microseconds: 123, sequence: 4))
        #expect(parse("t=123 hello") == .init(microseconds: 123, sequence: nil))
        #expect(parse("t=123") == .init(microseconds: 123, sequence: nil))
        #expect(parse("t=123 s=x") == .init(microseconds: 123, sequence: nil))
        for bad in ["", "t", "t=", "t= 5", "t=12a s=1", "x=1 s=2", "s=1 t=2", " t=1", "t=99999999999999999999 "] {
            #expect(parse(bad) == nil, "\(bad)")
        }
    }

    // MARK: - Losses

    @Test func sequenceAccountingOnASyntheticSequence() {
        var tracker = SequenceTracker()
        var counts = FanoutCounts()
        // 0 1 2, a gap of 3 and 4, 5 6, 4 late, 7, a gap of 8 9, 10, 6 again, 3 late.
        let outcomes = [0, 1, 2, 5, 6, 4, 7, 10, 6, 3].map { s -> SequenceTracker.Outcome in
            let outcome = tracker.observe(UInt64(s))
            counts.count(outcome)
            return outcome
        }
        #expect(outcomes == [.inOrder, .inOrder, .inOrder, .gap(missing: 2), .inOrder, .late, .inOrder,
                             .gap(missing: 2), .duplicate, .late])
        #expect(counts.gaps == 2)
        #expect(counts.reordered == 2)
        #expect(counts.duplicates == 1)
        #expect(counts.losses == 2)  // 8 and 9
        #expect(tracker.received == 10)
        #expect(tracker.next == 11)
        // 15 published: 11...14 never came.
        #expect(tracker.tail(published: 15) == 4)
        #expect(tracker.tail(published: 11) == 0)
        // A subscriber that received nothing lost everything.
        #expect(SequenceTracker().tail(published: 15) == 15)
    }

    @Test func aHugeGapIsCountedButNotRemembered() {
        var tracker = SequenceTracker()
        var counts = FanoutCounts()
        counts.count(tracker.observe(1_000_000))
        #expect(counts.losses == 1_000_000 && counts.gaps == 1)
        // Too many holes to remember: an old number is taken for a duplicate, not a late one.
        counts.count(tracker.observe(5))
        #expect(counts.duplicates == 1 && counts.losses == 1_000_000)
    }

    // MARK: - Histogram and report

    @Test func histogramPercentilesWithinHdrPrecision() {
        var a = LatencyHistogram()
        var b = LatencyHistogram()
        for v in 1...1000 { a.record(UInt64(v) * 1000) }  // 1 µs ... 1 ms
        for v in 1001...2000 { b.record(UInt64(v) * 1000) }
        a.merge(b)
        #expect(a.count == 2000)
        #expect(a.max == 2_000_000)
        for (q, exact) in [(0.5, 1_000_000.0), (0.9, 1_800_000.0), (0.99, 1_980_000.0)] {
            let value = Double(a.percentile(q))
            #expect(abs(value - exact) / exact < 0.002, "p\(q * 100): \(value)")
        }
        #expect(a.percentile(1) == 2_000_000)
        #expect(abs(a.mean - 1_000_500) < 1)
        #expect(LatencyHistogram().percentile(0.5) == 0)
        var huge = LatencyHistogram()
        huge.record(UInt64.max)
        #expect(huge.count == 1)
    }

    @Test func reportIsOneJSONObject() throws {
        var window = FanoutSnapshot()
        for v in 1...100 { window.histogram.record(UInt64(v) * 10_000) }
        window.deliveries = 100
        window.seconds = 1
        var whole = window
        whole.delivered = 120
        whole.serverCloses = [1013: 2, 1006: 1]
        whole.counts.gaps = 1
        let report = FanoutReport(
            url: "ws://127.0.0.1:9/topics/\"q\"", publishURL: "ws://127.0.0.1:9/p", subscribers: 2, connected: 2,
            connectSeconds: 0.01, threads: 1, rate: 50, size: 100, warmup: 1, window: window, whole: whole,
            publisher: PublisherStats(sent: 60, sentInWindow: 50, lateMax: 1500, received: 60), cpu: 0.25
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json.utf8)) as? [String: Any])
        #expect(object["mode"] as? String == "fanout")
        #expect(object["url"] as? String == "ws://127.0.0.1:9/topics/\"q\"")
        #expect(object["deliveries"] as? Int == 100)
        #expect(object["expected_per_s"] as? Double == 100)
        #expect(object["late_max_us"] as? Double == 1.5)
        #expect(object["server_closes"] as? [String: Int] == ["1006": 1, "1013": 2])
        #expect(object["publisher_closed"] is NSNull)
        #expect(object["client_cpu_pct"] as? Double == 25)
        let p99 = try #require(object["p99_us"] as? Double)
        #expect(abs(p99 - 990) < 2)
        #expect(!report.json.contains("\n"))
        #expect(report.lines.last?.hasPrefix("result: mode=fanout subscribers=2 ") == true)
    }

    @Test func sourceAddressesAreOnlyPlannedWhenOneIsNotEnough() throws {
        #expect(try BenchSources.plan(count: 10_000, host: "127.0.0.1") == nil)
        let sources = try #require(try BenchSources.plan(count: 50_000, host: "127.0.0.1"))
        #expect(sources.address(for: 0)?.ipAddress == "127.0.0.1")
        #expect(sources.address(for: sources.perAddress)?.ipAddress == "127.0.0.2")
        #expect(sources.address(for: 49_999)?.ipAddress == "127.0.0.\(1 + 49_999 / sources.perAddress)")
        #expect(throws: (any Error).self) { _ = try BenchSources.plan(count: 50_000, host: "::1") }
        #expect(throws: (any Error).self) { _ = try BenchSources.plan(count: 50_000, host: "localhost") }
        #expect(throws: (any Error).self) { _ = try BenchSources.plan(count: 10_000_000, host: "127.0.0.1") }
    }
}
