import ArgumentParser
import Duplex
import DuplexCore
import NIOCore
import NIOPosix
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `duplex bench`: WebSocket load generators, written directly on SwiftNIO and DuplexCore (no
/// higher-level client) so that they cost little per message.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generators: echo round trips (the default subcommand) and pub/sub fan-out.",
        discussion: """
            `duplex bench URL ...` is `duplex bench echo URL ...`.

            ws:// or wss:// (--insecure / -k accepts a self-signed certificate, --ca trusts a CA file). Run \
            it on the same machine as the server, over loopback, pinned to another CPU than the server \
            (taskset) so that the server is the bottleneck.
            """,
        subcommands: [BenchEcho.self, BenchFanout.self],
        defaultSubcommand: BenchEcho.self
    )
}

/// The options every load generator has: how long, on how many event loops, how fast to connect.
struct BenchRunOptions: ParsableArguments {
    @Option(help: "Seconds counted.") var duration = 10.0
    @Option(help: "Seconds of load before counting starts.") var warmup = 1.0
    @Option(help: "Event loop threads of the generator.") var threads = 1
    @Option(help: "Connections being set up at the same time.") var connectConcurrency = 100
    @Flag(name: [.customShort("k"), .long], help: "wss://: accept any server certificate, self-signed included.")
    var insecure = false
    @Option(name: .customLong("ca"), help: "wss://: a PEM file of CA certificates to trust instead of the system's.")
    var caFile: String?

    /// The endpoint for a ws:// or wss:// URL, with the TLS context of these options for wss://.
    func endpoint(_ url: String, maxFrameSize: Int) throws -> BenchEndpoint {
        let parsed: WebSocketURL
        do {
            parsed = try WebSocketURL(url)
        } catch {
            throw ValidationError("duplex bench takes a ws:// or wss:// URL: \(url): \(error)")
        }
        guard parsed.isSecure else { return BenchEndpoint(parsed, maxFrameSize: maxFrameSize) }
        var tls = WebSocketClientConfiguration.TLS(certificateVerification: insecure ? .none : .fullVerification)
        if let caFile { tls.trustRoots = .file(caFile) }
        do {
            return BenchEndpoint(parsed, maxFrameSize: maxFrameSize, tls: try NIOSSLContext(configuration: tls.makeTLSConfiguration()))
        } catch {
            throw ValidationError("cannot set up TLS for \(url): \(error)")
        }
    }

    func validate() throws {
        guard duration > 0, warmup >= 0, threads > 0, connectConcurrency > 0
        else { throw ValidationError("--duration, --threads and --connect-concurrency must be positive, --warmup not negative") }
    }
}

/// `duplex bench echo`: echo round trips over many connections.
///
/// Each connection sends a message, waits for its echo, records the round trip and sends the
/// next (or keeps `--pipeline` messages in flight). With `--idle N` it opens N connections, holds
/// them without traffic and closes them (for measuring a server's memory per idle connection).
struct BenchEcho: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "Echo round trips over many connections; messages/s and latency percentiles.",
        discussion: """
            Each connection keeps --pipeline messages in flight against an echo endpoint: it sends one, \
            waits for the whole echo, records the round trip, and sends the next. After --warmup seconds of \
            load, --duration seconds are counted. The last line of the report is machine-readable \
            (`result: key=value ...`).

            With --idle N, it opens N connections, prints `idle-ready: N` once they are all upgraded, holds \
            them without traffic for --hold seconds, then closes them.
            """
    )

    enum Kind: String, EnumerableFlag {
        case text, binary
        static func help(for value: Kind) -> ArgumentHelp? {
            value == .text ? "Send text messages (the default)." : "Send binary messages."
        }
    }

    @Argument(help: "ws:// or wss:// URL of an echo endpoint, e.g. ws://127.0.0.1:8080/echo.") var url: String
    @Option(help: "Connections.") var connections = 100
    @Option(help: "Message size in bytes.") var size = 16
    @OptionGroup var options: BenchRunOptions
    @Flag var kind: Kind = .text
    @Option(help: "Messages in flight per connection.") var pipeline = 1
    @Option(help: "Open N connections, hold them idle, report, close (no messages).") var idle: Int?
    @Option(help: "Seconds to hold idle connections open (with --idle).") var hold = 5.0

    func validate() throws {
        guard connections > 0, size >= 0, pipeline > 0
        else { throw ValidationError("counts and durations must be positive") }
        if let idle, idle <= 0 { throw ValidationError("--idle must be positive") }
        _ = try options.endpoint(url, maxFrameSize: 0)
    }

    func run() async throws {
        let limit = Bench.raiseFileLimit()
        let wanted = idle ?? connections
        if Int(limit) < wanted + 64 {
            print("duplex bench: warning: the open-file limit is \(limit), below \(wanted) connections")
        }
        let payload: ByteBuffer
        switch kind {
        case .text: payload = ByteBuffer(repeating: UInt8(ascii: "x"), count: size)
        case .binary: payload = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        }
        let endpoint = try options.endpoint(url, maxFrameSize: max(size, 125) + 1024)
        let workload = EchoWorkload(opcode: kind == .text ? .text : .binary, payload: payload, pipeline: pipeline)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
        do {
            try await run(endpoint: endpoint, workload: workload, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    private func run(endpoint: BenchEndpoint, workload: EchoWorkload, group: MultiThreadedEventLoopGroup) async throws {
        let loops = try await BenchLoops(group: group) { EchoLoop() }
        let count = idle ?? connections
        let what = idle != nil ? "idle" : "\(Bench.formatSize(size)) \(kind.rawValue), pipeline \(pipeline)"
        print("duplex bench: \(url), \(count) connections, \(what)")

        let opening = await loops.open(count: count, concurrency: options.connectConcurrency, endpoint: endpoint) {
            loop, upgraded, eventLoop in
            EchoConnection(endpoint: endpoint, workload: workload, loop: loop, upgraded: upgraded, eventLoop: eventLoop)
        }
        print("connections: \(opening.summary(of: count))")
        fflush(nil)

        if idle != nil {
            print("idle-ready: \(opening.opened)")
            fflush(nil)
            try await Task.sleep(nanoseconds: UInt64(hold * 1e9))
            var snapshot = BenchSnapshot()
            for part in try await loops.collect({ $0.stop() }) { snapshot.merge(part) }
            await loops.closeAll()
            print("held \(opening.opened) idle connections for \(hold) s; \(snapshot.open) still open at the end")
            print("errors: \(snapshot.errors.description)")
            print("result: mode=idle connections=\(opening.opened) still_open=\(snapshot.open) errors=\(snapshot.errors.total)")
            fflush(nil)
            return
        }

        guard opening.opened > 0 else { throw ExitCode.failure }
        loops.forEach { $0.start() }
        try await Task.sleep(nanoseconds: UInt64(options.warmup * 1e9))
        let cpuStart = Bench.cpuSeconds()
        let wallStart = BenchClock.now()
        loops.forEach { $0.startRecording() }
        try await Task.sleep(nanoseconds: UInt64(options.duration * 1e9))
        var snapshot = BenchSnapshot()
        for part in try await loops.collect({ $0.stop() }) { snapshot.merge(part) }
        let cpu = (Bench.cpuSeconds() - cpuStart) / (Double(BenchClock.now() - wallStart) / 1e9)
        await loops.closeAll()
        report(snapshot, cpu: cpu)
    }

    private func report(_ snapshot: BenchSnapshot, cpu: Double) {
        let h = snapshot.histogram
        let rate = snapshot.seconds > 0 ? Double(snapshot.messages) / snapshot.seconds : 0
        let mibps = rate * Double(size) / Double(1 << 20)
        func ms(_ ns: UInt64) -> String { Bench.fixed(Double(ns) / 1e6, 3) + " ms" }
        func us(_ ns: UInt64) -> String { Bench.fixed(Double(ns) / 1e3, 1) }
        print("messages: \(snapshot.messages) in \(Bench.fixed(snapshot.seconds, 2)) s = \(Bench.grouped(Int(rate.rounded()))) msg/s"
              + " (\(Bench.fixed(mibps, 1)) MiB/s each way)")
        print("latency: p50 \(ms(h.percentile(0.5)))  p90 \(ms(h.percentile(0.9)))  p99 \(ms(h.percentile(0.99)))"
              + "  p99.9 \(ms(h.percentile(0.999)))  max \(ms(h.max))  mean \(ms(UInt64(h.mean)))")
        print("generator CPU: \(Bench.fixed(cpu * 100, 0)) % of one core (user + system, during the counted seconds)")
        print("errors: \(snapshot.errors.description)")
        print("result: mode=echo connections=\(connections) size=\(size) kind=\(kind.rawValue) pipeline=\(pipeline)"
              + " messages=\(snapshot.messages) seconds=\(Bench.fixed(snapshot.seconds, 3))"
              + " msg_per_s=\(Int(rate.rounded())) p50_us=\(us(h.percentile(0.5))) p90_us=\(us(h.percentile(0.9)))"
              + " p99_us=\(us(h.percentile(0.99))) max_us=\(us(h.max)) generator_cpu=\(Bench.fixed(cpu * 100, 0))"
              + " errors=\(snapshot.errors.total)")
        fflush(nil)
    }

}

extension Bench {
    // MARK: - Helpers

    /// Raises the soft open-file limit to the hard one, and both to `wanted` if that is more and
    /// the process may (root); returns the soft limit now in force.
    static func raiseFileLimit(wanted: Int = 0) -> rlim_t {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        if wanted > 0, limit.rlim_cur < rlim_t(wanted) {
            var more = rlimit(rlim_cur: rlim_t(wanted), rlim_max: max(limit.rlim_max, rlim_t(wanted)))
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &more) == 0 { limit = more }
        }
        return limit.rlim_cur
    }

    /// User + system CPU seconds of this process.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        #if canImport(Glibc)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// `value` with `digits` decimals (no Foundation).
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let sign = value < 0 && scaled != 0 ? "-" : ""
        let whole = scaled / Int64(scale)
        guard digits > 0 else { return sign + "\(whole)" }
        var fraction = String(scaled % Int64(scale))
        while fraction.count < digits { fraction = "0" + fraction }
        return sign + "\(whole).\(fraction)"
    }

    static func formatSize(_ bytes: Int) -> String {
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) B"
    }

    static func grouped(_ n: Int) -> String {
        var digits = Array(String(n))
        var i = digits.count - 3
        while i > 0 {
            digits.insert(",", at: i)
            i -= 3
        }
        return String(digits)
    }
}
