import ArgumentParser
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `duplex bench fanout`: N subscriber connections and one publisher at a fixed rate; the
/// latency of every delivery, losses, and the server's closes of slow subscribers.
struct BenchFanout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout",
        abstract: "Pub/sub fan-out: N subscribers, one publisher at a fixed rate; deliveries/s, latency, losses.",
        discussion: """
            Opens --connections subscriber connections to URL, then one publisher connection to --publish-url \
            (default: URL), which sends --rate text messages a second of --size bytes on a fixed schedule (open \
            loop): message k is due at start + k/rate and carries that intended time, `t=<µs since the epoch, \
            CLOCK_REALTIME> s=<k> ` padded with x (the payload of wsload's publish and subscribe modes), so that \
            a server that falls behind cannot hide it; a late publisher sends the overdue messages back to back \
            and reports by how much it was ever late. The endpoint is expected to subscribe every connection to \
            one topic and publish every message it receives to it (duplex serve's /topics/NAME).

            Every subscriber parses every message: latency = now - t; per connection, a missing number is a \
            loss (until it arrives late: reordered), a jump forward a gap. Closes by the server are counted by \
            close code. After --warmup seconds, --duration seconds are counted; a progress line every second; \
            the publisher then stops and the subscribers get up to 5 s to receive the rest. Losses cover the \
            whole run; numbers published after the server closed a subscriber count as lost after a close.

            Over 20,000 subscribers are spread over source addresses 127.0.0.x (connection i binds \
            127.0.0.(1 + i / 20000)); the open-file limit is raised to the hard limit. --threads event loops \
            serve the subscribers; the publisher has one of its own.
            """
    )

    @Argument(help: "ws:// or wss:// URL of the subscribers' endpoint, e.g. ws://127.0.0.1:8080/topics/bench.") var url: String
    @Option(help: "ws:// or wss:// URL the publisher connects to (default: URL).") var publishURL: String?
    @Option(help: "Subscriber connections.") var connections = 1000
    @Option(help: "Messages published per second.") var rate = 100.0
    @Option(help: "Bytes per message (at least the t=... s=... prefix).") var size = 100
    @OptionGroup var options: BenchRunOptions
    @Flag(help: "Print the report as one JSON object on stdout (the progress lines go to stderr).") var json = false

    /// Seconds the subscribers get after the last message was published.
    static let drainSeconds = 5.0

    func validate() throws {
        guard connections > 0 else { throw ValidationError("--connections must be positive") }
        guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be positive") }
        guard size >= 0, size <= 16 << 20 else { throw ValidationError("--size must be 0...16 MiB") }
        _ = try options.endpoint(url, maxFrameSize: 0)
        if let publishURL { _ = try options.endpoint(publishURL, maxFrameSize: 0) }
    }

    func run() async throws {
        let out = BenchOutput(json: json)
        let maxFrame = max(size, 125) + 1024
        let subscribe = try options.endpoint(url, maxFrameSize: maxFrame)
        let publish = try options.endpoint(publishURL ?? url, maxFrameSize: maxFrame)
        let sources: BenchSources?
        do {
            sources = try BenchSources.plan(count: connections, host: subscribe.host)
        } catch {
            out.fail("\(error)")
        }
        let needed = connections + 1 + 32
        let limit = Bench.raiseFileLimit(wanted: needed)
        if Int(limit) < needed {
            out.fail("""
                \(connections) subscribers and a publisher need about \(needed) file descriptors, and the limit is \
                \(limit) even after raising it to the hard limit: raise the hard limit (ulimit -Hn, as root) or use \
                fewer --connections
                """)
        }
        let subscribers = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
        let publisher = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let report: FanoutReport
        do {
            report = try await run(
                subscribe: subscribe, publish: publish,
                sources: sources, subscribers: subscribers, publisher: publisher, out: out
            )
        } catch {
            try? await subscribers.shutdownGracefully()
            try? await publisher.shutdownGracefully()
            throw error
        }
        try? await subscribers.shutdownGracefully()
        try? await publisher.shutdownGracefully()
        out.report(report)
        if report.window.deliveries == 0 { throw ExitCode.failure }
    }

    private func run(
        subscribe: BenchEndpoint, publish: BenchEndpoint, sources: BenchSources?,
        subscribers: MultiThreadedEventLoopGroup, publisher: MultiThreadedEventLoopGroup, out: BenchOutput
    ) async throws -> FanoutReport {
        let loops = try await BenchLoops(group: subscribers) { FanoutLoop() }
        let publisherLoops = try await BenchLoops(group: publisher) { PublisherLoop() }
        out.line("duplex bench fanout: \(url), \(connections) subscribers, \(options.threads) event loop(s);"
                 + " publisher \(publishURL ?? url), \(Bench.fixed(rate, rate < 10 ? 2 : 0)) msg/s of \(Bench.formatSize(size))")

        let opening = await loops.open(count: connections, concurrency: options.connectConcurrency, endpoint: subscribe,
                                       sources: sources) { loop, upgraded, eventLoop in
            SubscriberConnection(endpoint: subscribe, loop: loop, upgraded: upgraded, eventLoop: eventLoop)
        }
        out.line("subscribers: \(opening.summary(of: connections))")
        guard opening.opened > 0 else { out.fail("no subscriber connected") }
        let workload = PublishWorkload(rate: rate, size: size)
        let publisherOpening = await publisherLoops.open(count: 1, concurrency: 1, endpoint: publish) { loop, upgraded, eventLoop in
            PublisherConnection(endpoint: publish, workload: workload, loop: loop, upgraded: upgraded, eventLoop: eventLoop)
        }
        guard publisherOpening.opened == 1 else {
            await loops.closeAll()
            out.fail("the publisher did not connect: \(publisherOpening.firstError ?? "?")")
        }
        // A moment for the server to finish subscribing the last connections.
        try await Task.sleep(nanoseconds: 100_000_000)

        // The timeline, on the monotonic clock; `realtime` is `start` on CLOCK_REALTIME.
        let now = BenchClock.now()
        let realtime = BenchClock.realtime() &+ 10_000_000
        let start = now &+ 10_000_000
        let windowStart = start &+ UInt64(options.warmup * 1e9)
        let windowEnd = windowStart &+ UInt64(options.duration * 1e9)
        let windowFrom = realtime &+ (windowStart - start)
        let windowTo = windowFrom &+ (windowEnd - windowStart)
        loops.forEach { $0.start(windowFrom: windowFrom, windowTo: windowTo) }
        publisherLoops.forEach { loop in
            loop.running = true
            loop.publisher?.publish(start: start, realtime: realtime, windowStart: windowStart, end: windowEnd)
        }

        var windowOpen = false
        var cpuStart = (cpu: 0.0, at: start)
        var nextProgress = start &+ 1_000_000_000
        var lastProgress = (at: start, delivered: UInt64(0))
        while true {
            let next = min(nextProgress, windowOpen ? windowEnd : windowStart)
            let now = BenchClock.now()
            if next > now { try await Task.sleep(nanoseconds: next - now) }
            if !windowOpen, BenchClock.now() >= windowStart {
                cpuStart = (Bench.cpuSeconds(), BenchClock.now())
                windowOpen = true
            }
            if BenchClock.now() >= nextProgress, nextProgress <= windowEnd {
                let snapshot = FanoutSnapshot.merged(try await loops.collect { $0.progress() })
                let at = BenchClock.now()
                let seconds = Double(at - lastProgress.at) / 1e9
                let rate = Double(snapshot.delivered - lastProgress.delivered) / max(seconds, 1e-9)
                out.progress(elapsed: Double(at - start) / 1e9, deliveriesPerSecond: rate, snapshot: snapshot,
                             warmup: !windowOpen)
                lastProgress = (at, snapshot.delivered)
                // A progress line can take a while when the loops lag behind: no catching up.
                repeat { nextProgress &+= 1_000_000_000 } while nextProgress <= BenchClock.now()
            }
            if windowOpen, BenchClock.now() >= windowEnd { break }
        }
        let window = FanoutSnapshot.merged(try await loops.collect { $0.endWindow() })
        let cpu = (Bench.cpuSeconds() - cpuStart.cpu) / max(Double(BenchClock.now() - cpuStart.at) / 1e9, 1e-9)

        // The publisher stops at the end of the window; then the subscribers get the rest.
        func publisherStats() async throws -> PublisherStats {
            try await publisherLoops.collect { $0.publisher?.stats ?? PublisherStats() }[0]
        }
        let drainEnd = BenchClock.now() &+ UInt64(Self.drainSeconds * 1e9)
        var stats = try await publisherStats()
        while !stats.finished, BenchClock.now() < drainEnd {
            try await Task.sleep(nanoseconds: 10_000_000)
            stats = try await publisherStats()
        }
        let published = stats.sent
        while BenchClock.now() < drainEnd {
            let caughtUp = try await loops.collect { $0.caughtUp(published: published) }
            if !caughtUp.contains(false) { break }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let whole = FanoutSnapshot.merged(try await loops.collect { $0.finish(published: published) })
        stats.received = try await publisherStats().received
        await publisherLoops.closeAll()
        await loops.closeAll()
        return FanoutReport(
            url: url, publishURL: publishURL ?? url, subscribers: connections, connected: opening.opened,
            connectSeconds: opening.seconds, threads: options.threads, rate: rate, size: size, warmup: options.warmup,
            window: window, whole: whole, publisher: stats, cpu: cpu
        )
    }
}

/// Where a fan-out run writes: the human-readable lines on stdout, or on stderr with `--json`
/// (stdout then gets the report as one JSON object).
struct BenchOutput: Sendable {
    var json: Bool

    func line(_ text: String) {
        if json {
            Self.standardError(text + "\n")
        } else {
            print(text)
        }
        fflush(nil)
    }

    /// Says why the run cannot go on and exits with status 2.
    func fail(_ reason: String) -> Never {
        fflush(nil)
        Self.standardError("duplex bench fanout: \(reason)\n")
        exit(2)
    }

    static func standardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var rest = UnsafeRawBufferPointer(bytes)
            while !rest.isEmpty {
                let n = write(2, rest.baseAddress, rest.count)
                guard n > 0 else { return }
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
        }
    }

    func progress(elapsed: Double, deliveriesPerSecond: Double, snapshot: FanoutSnapshot, warmup: Bool) {
        let h = snapshot.histogram
        var text = "[\(Bench.fixed(elapsed, 0)) s] deliveries \(Bench.grouped(Int(deliveriesPerSecond.rounded())))/s"
            + "  p50 \(FanoutReport.ms(h.percentile(0.5)))  p99 \(FanoutReport.ms(h.percentile(0.99))) ms"
            + "  losses \(snapshot.counts.losses)"
        if !snapshot.serverCloses.isEmpty { text += "  server closes \(FanoutReport.codes(snapshot.serverCloses))" }
        if warmup { text += "  (warm-up)" }
        line(text)
    }

    func report(_ report: FanoutReport) {
        for text in report.lines { line(text) }
        if json {
            print(report.json)
            fflush(nil)
        }
    }
}

/// The result of a fan-out run.
struct FanoutReport: Sendable {
    var url: String
    var publishURL: String
    var subscribers: Int
    var connected: Int
    var connectSeconds: Double
    var threads: Int
    var rate: Double
    var size: Int
    var warmup: Double
    /// The counted window: deliveries and latencies.
    var window: FanoutSnapshot
    /// The end of the run: deliveries, losses and closes over the whole run.
    var whole: FanoutSnapshot
    var publisher: PublisherStats
    /// Client CPU over the window, as a fraction of one core.
    var cpu: Double

    var deliveriesPerSecond: Double { window.seconds > 0 ? Double(window.deliveries) / window.seconds : 0 }
    var expectedPerSecond: Double { Double(connected) * rate }
    var errors: BenchErrors { whole.errors }

    static func ms(_ ns: UInt64) -> String { Bench.fixed(Double(ns) / 1e6, 3) }
    static func us(_ ns: UInt64) -> Double { Double(ns) / 1e3 }

    static func codes(_ closes: [UInt16: Int]) -> String {
        closes.isEmpty ? "none" : closes.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
    }

    var lines: [String] {
        let h = window.histogram
        let c = whole.counts
        return [
            "deliveries: \(window.deliveries) in \(Bench.fixed(window.seconds, 2)) s = \(Bench.grouped(Int(deliveriesPerSecond.rounded())))/s"
                + " (expected \(Bench.grouped(Int(expectedPerSecond.rounded())))/s: \(connected) subscribers × \(Bench.fixed(rate, 2)) msg/s)",
            "latency: p50 \(Self.ms(h.percentile(0.5)))  p90 \(Self.ms(h.percentile(0.9)))  p99 \(Self.ms(h.percentile(0.99)))"
                + "  p99.9 \(Self.ms(h.percentile(0.999)))  max \(Self.ms(h.max))  mean \(Self.ms(UInt64(h.mean))) ms"
                + " (\(h.count) deliveries, publish to receipt)",
            "published: \(publisher.sent) (\(publisher.sentInWindow) in the window), late at most \(Self.ms(publisher.lateMax)) ms,"
                + " \(publisher.skipped) skipped; \(publisher.received) came back to the publisher"
                + (publisher.closedByServer.map { "; the server closed the publisher: \($0)" } ?? ""),
            "losses: \(c.losses) (gaps \(c.gaps), reordered \(c.reordered), duplicates \(c.duplicates), untimed \(c.untimed));"
                + " delivered \(whole.delivered) of \(publisher.sent) × \(connected)",
            "server closes: \(Self.codes(whole.serverCloses)) (lost after a close: \(c.lostAfterClose))",
            "generator CPU: \(Bench.fixed(cpu * 100, 0)) % of one core (user + system, during the counted seconds)",
            "errors: \(errors.description)",
            "result: mode=fanout subscribers=\(connected) rate=\(Bench.fixed(rate, 2)) size=\(size) seconds=\(Bench.fixed(window.seconds, 3))"
                + " deliveries=\(window.deliveries) deliveries_per_s=\(Int(deliveriesPerSecond.rounded()))"
                + " p50_us=\(Bench.fixed(Self.us(h.percentile(0.5)), 1)) p90_us=\(Bench.fixed(Self.us(h.percentile(0.9)), 1))"
                + " p99_us=\(Bench.fixed(Self.us(h.percentile(0.99)), 1)) p999_us=\(Bench.fixed(Self.us(h.percentile(0.999)), 1))"
                + " max_us=\(Bench.fixed(Self.us(h.max), 1)) losses=\(c.losses) gaps=\(c.gaps) reordered=\(c.reordered)"
                + " server_closes=\(Self.codes(whole.serverCloses)) late_max_us=\(Bench.fixed(Self.us(publisher.lateMax), 1))"
                + " generator_cpu=\(Bench.fixed(cpu * 100, 0)) errors=\(errors.total)",
        ]
    }

    var json: String {
        let h = window.histogram
        let c = whole.counts
        var object = JSONObject()
        object["mode"] = .string("fanout")
        object["url"] = .string(url)
        object["publish_url"] = .string(publishURL)
        object["subscribers"] = .int(subscribers)
        object["connected"] = .int(connected)
        object["connect_seconds"] = .number(connectSeconds)
        object["threads"] = .int(threads)
        object["rate"] = .number(rate)
        object["size"] = .int(size)
        object["warmup_seconds"] = .number(warmup)
        object["seconds"] = .number(window.seconds)
        object["deliveries"] = .int(window.deliveries)
        object["deliveries_per_s"] = .number(deliveriesPerSecond)
        object["expected_per_s"] = .number(expectedPerSecond)
        object["p50_us"] = .number(Self.us(h.percentile(0.5)))
        object["p90_us"] = .number(Self.us(h.percentile(0.9)))
        object["p99_us"] = .number(Self.us(h.percentile(0.99)))
        object["p999_us"] = .number(Self.us(h.percentile(0.999)))
        object["max_us"] = .number(Self.us(h.max))
        object["mean_us"] = .number(h.mean / 1e3)
        object["published"] = .int(Int(publisher.sent))
        object["published_in_window"] = .int(Int(publisher.sentInWindow))
        object["skipped"] = .int(Int(publisher.skipped))
        object["late_max_us"] = .number(Self.us(publisher.lateMax))
        object["publisher_received"] = .int(Int(publisher.received))
        object["publisher_closed"] = publisher.closedByServer.map { .int(Int($0)) } ?? .null
        object["delivered_total"] = .int(Int(whole.delivered))
        object["losses"] = .int(Int(c.losses))
        object["gaps"] = .int(c.gaps)
        object["reordered"] = .int(c.reordered)
        object["duplicates"] = .int(c.duplicates)
        object["untimed"] = .int(c.untimed)
        object["lost_after_close"] = .int(Int(c.lostAfterClose))
        var closes = JSONObject()
        for (code, count) in whole.serverCloses.sorted(by: { $0.key < $1.key }) { closes["\(code)"] = .int(count) }
        object["server_closes"] = .object(closes)
        object["still_open"] = .int(whole.open)
        object["errors"] = .int(errors.total)
        object["client_cpu_pct"] = .number(cpu * 100)
        return object.rendered
    }
}

/// A JSON object with its keys in the order they were set (no Foundation).
struct JSONObject: Sendable {
    indirect enum Value: Sendable {
        case string(String), int(Int), number(Double), object(JSONObject), null
    }

    private var entries: [(key: String, value: Value)] = []

    subscript(key: String) -> Value? {
        get { entries.first { $0.key == key }?.value }
        set {
            entries.removeAll { $0.key == key }
            if let newValue { entries.append((key, newValue)) }
        }
    }

    var rendered: String {
        "{" + entries.map { Self.quote($0.key) + ":" + Self.render($0.value) }.joined(separator: ",") + "}"
    }

    private static func render(_ value: Value) -> String {
        switch value {
        case .string(let s): quote(s)
        case .int(let n): "\(n)"
        case .number(let x): x.isFinite ? Bench.fixed(x, 3) : "null"
        case .object(let o): o.rendered
        case .null: "null"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
