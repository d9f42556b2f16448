import ArgumentParser
import DuplexCore
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `duplex bench`: a WebSocket load generator for echo endpoints.
///
/// Written directly on SwiftNIO and DuplexCore (no higher-level client) so that it costs little
/// per message: each connection sends a message, waits for its echo, records the round trip and
/// sends the next (or keeps `--pipeline` messages in flight). With `--idle N` it opens N
/// connections, holds them without traffic and closes them (for measuring a server's memory
/// per idle connection).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load generator: echo round trips over many connections; messages/s and latency percentiles.",
        discussion: """
            Each connection keeps --pipeline messages in flight against an echo endpoint: it sends one, \
            waits for the whole echo, records the round trip, and sends the next. After --warmup seconds of \
            load, --duration seconds are counted. The last line of the report is machine-readable \
            (`result: key=value ...`).

            With --idle N, it opens N connections, prints `idle-ready: N` once they are all upgraded, holds \
            them without traffic for --hold seconds, then closes them.

            Only ws:// (no TLS): run it on the same machine as the server, over loopback, pinned to another \
            CPU than the server (taskset) so that the server is the bottleneck.
            """
    )

    enum Kind: String, EnumerableFlag {
        case text, binary
        static func help(for value: Kind) -> ArgumentHelp? {
            value == .text ? "Send text messages (the default)." : "Send binary messages."
        }
    }

    @Argument(help: "ws:// URL of an echo endpoint, e.g. ws://127.0.0.1:8080/echo.") var url: String
    @Option(help: "Connections.") var connections = 100
    @Option(help: "Message size in bytes.") var size = 16
    @Option(help: "Seconds counted.") var duration = 10.0
    @Option(help: "Seconds of load before counting starts.") var warmup = 1.0
    @Flag var kind: Kind = .text
    @Option(help: "Messages in flight per connection.") var pipeline = 1
    @Option(help: "Open N connections, hold them idle, report, close (no messages).") var idle: Int?
    @Option(help: "Seconds to hold idle connections open (with --idle).") var hold = 5.0
    @Option(help: "Event loop threads of the generator.") var threads = 1
    @Option(help: "Connections being set up at the same time.") var connectConcurrency = 100

    func validate() throws {
        guard connections > 0, size >= 0, duration > 0, warmup >= 0, pipeline > 0, threads > 0, connectConcurrency > 0
        else { throw ValidationError("counts and durations must be positive") }
        if let idle, idle <= 0 { throw ValidationError("--idle must be positive") }
        _ = try BenchTarget(url)
    }

    func run() async throws {
        let target = try BenchTarget(url)
        let limit = Self.raiseFileLimit()
        let wanted = idle ?? connections
        if Int(limit) < wanted + 64 {
            print("duplex bench: warning: the open-file limit is \(limit), below \(wanted) connections")
        }
        let payload: ByteBuffer
        switch kind {
        case .text: payload = ByteBuffer(repeating: UInt8(ascii: "x"), count: size)
        case .binary: payload = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        }
        let workload = BenchWorkload(
            host: target.host, port: target.port, path: target.path,
            opcode: kind == .text ? .text : .binary, payload: payload, pipeline: pipeline,
            maxFrameSize: max(size, 125) + 1024
        )

        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            try await run(workload: workload, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    private func run(workload: BenchWorkload, group: MultiThreadedEventLoopGroup) async throws {
        let loops = Array(group.makeIterator())
        var states: [NIOLoopBound<BenchLoopState>] = []
        for loop in loops {
            states.append(try await loop.submit { NIOLoopBound(BenchLoopState(), eventLoop: loop) }.get())
        }
        let count = idle ?? connections
        let what = idle != nil ? "idle" : "\(Self.formatSize(size)) \(kind.rawValue), pipeline \(pipeline)"
        print("duplex bench: \(url), \(count) connections, \(what)")

        let setupStart = BenchClock.now()
        let (opened, connectErrors, firstError) = await openConnections(count, workload: workload, loops: loops, states: states)
        let setupSeconds = Double(BenchClock.now() - setupStart) / 1e9
        print("connections: \(opened) open of \(count) in \(Self.fixed(setupSeconds, 2)) s"
              + (connectErrors > 0 ? ", \(connectErrors) failed (first: \(firstError ?? "?"))" : ""))
        fflush(nil)

        if idle != nil {
            print("idle-ready: \(opened)")
            fflush(nil)
            try await Task.sleep(nanoseconds: UInt64(hold * 1e9))
            var snapshot = BenchSnapshot()
            for (i, state) in states.enumerated() {
                snapshot.merge(try await loops[i].submit { state.value.stop() }.get())
            }
            await closeAll(loops: loops, states: states)
            print("held \(opened) idle connections for \(hold) s; \(snapshot.open) still open at the end")
            print("errors: \(snapshot.errors.description)")
            print("result: mode=idle connections=\(opened) still_open=\(snapshot.open) errors=\(snapshot.errors.total)")
            fflush(nil)
            return
        }

        guard opened > 0 else { throw ExitCode.failure }
        for (i, state) in states.enumerated() { loops[i].execute { state.value.start() } }
        try await Task.sleep(nanoseconds: UInt64(warmup * 1e9))
        let cpuStart = Self.cpuSeconds()
        let wallStart = BenchClock.now()
        for (i, state) in states.enumerated() { loops[i].execute { state.value.startRecording() } }
        try await Task.sleep(nanoseconds: UInt64(duration * 1e9))
        var snapshot = BenchSnapshot()
        for (i, state) in states.enumerated() {
            snapshot.merge(try await loops[i].submit { state.value.stop() }.get())
        }
        let cpu = (Self.cpuSeconds() - cpuStart) / (Double(BenchClock.now() - wallStart) / 1e9)
        await closeAll(loops: loops, states: states)
        report(snapshot, cpu: cpu)
    }

    /// Opens `count` connections, at most `connectConcurrency` being set up at once.
    private func openConnections(
        _ count: Int, workload: BenchWorkload, loops: [any EventLoop], states: [NIOLoopBound<BenchLoopState>]
    ) async -> (opened: Int, failed: Int, firstError: String?) {
        await withTaskGroup(of: String?.self) { group in
            var opened = 0
            var failed = 0
            var firstError: String?
            func collect(_ error: String??) {
                guard let error else { return }
                if let error {
                    failed += 1
                    if firstError == nil { firstError = error }
                } else {
                    opened += 1
                }
            }
            for i in 0..<count {
                if i >= connectConcurrency { collect(await group.next()) }
                let loop = loops[i % loops.count]
                let state = states[i % loops.count]
                group.addTask { await Self.connect(workload: workload, loop: loop, state: state) }
            }
            while let result = await group.next() { collect(result) }
            return (opened, failed, firstError)
        }
    }

    /// Connects and upgrades one connection; nil on success, else the error.
    private static func connect(workload: BenchWorkload, loop: any EventLoop, state: NIOLoopBound<BenchLoopState>) async -> String? {
        let upgraded = loop.makePromise(of: Void.self)
        do {
            _ = try await ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(Int64(10)))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = BenchConnectionHandler(
                            workload: workload, loop: state.value, upgraded: upgraded, eventLoop: channel.eventLoop
                        )
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: workload.host, port: workload.port)
                .get()
            try await upgraded.futureResult.get()
            return nil
        } catch {
            upgraded.fail(error)
            // Handshake failures are counted by the handler; connect failures here.
            if !(error is BenchError) {
                loop.execute { state.value.errors.connect += 1 }
            }
            return "\(error)"
        }
    }

    /// Closes every connection with a close frame; forces what is left after 3 s.
    private func closeAll(loops: [any EventLoop], states: [NIOLoopBound<BenchLoopState>]) async {
        for (i, state) in states.enumerated() {
            let loop = loops[i]
            let closing = try? await loop.submit {
                EventLoopFuture.andAllComplete(state.value.closeAll(), on: loop)
            }.get()
            guard let closing else { continue }
            let timeout = loop.scheduleTask(in: .seconds(Int64(3))) { state.value.forceCloseAll() }
            try? await closing.get()
            timeout.cancel()
        }
    }

    private func report(_ snapshot: BenchSnapshot, cpu: Double) {
        let h = snapshot.histogram
        let rate = snapshot.seconds > 0 ? Double(snapshot.messages) / snapshot.seconds : 0
        let mibps = rate * Double(size) / Double(1 << 20)
        func ms(_ ns: UInt64) -> String { Self.fixed(Double(ns) / 1e6, 3) + " ms" }
        func us(_ ns: UInt64) -> String { Self.fixed(Double(ns) / 1e3, 1) }
        print("messages: \(snapshot.messages) in \(Self.fixed(snapshot.seconds, 2)) s = \(Self.grouped(Int(rate.rounded()))) msg/s"
              + " (\(Self.fixed(mibps, 1)) MiB/s each way)")
        print("latency: p50 \(ms(h.percentile(0.5)))  p90 \(ms(h.percentile(0.9)))  p99 \(ms(h.percentile(0.99)))"
              + "  p99.9 \(ms(h.percentile(0.999)))  max \(ms(h.max))  mean \(ms(UInt64(h.mean)))")
        print("generator CPU: \(Self.fixed(cpu * 100, 0)) % of one core (user + system, during the counted seconds)")
        print("errors: \(snapshot.errors.description)")
        print("result: mode=echo connections=\(connections) size=\(size) kind=\(kind.rawValue) pipeline=\(pipeline)"
              + " messages=\(snapshot.messages) seconds=\(Self.fixed(snapshot.seconds, 3))"
              + " msg_per_s=\(Int(rate.rounded())) p50_us=\(us(h.percentile(0.5))) p90_us=\(us(h.percentile(0.9)))"
              + " p99_us=\(us(h.percentile(0.99))) max_us=\(us(h.max)) generator_cpu=\(Self.fixed(cpu * 100, 0))"
              + " errors=\(snapshot.errors.total)")
        fflush(nil)
    }

    // MARK: - Helpers

    /// Raises the soft open-file limit to the hard one; returns the soft limit now in force.
    static func raiseFileLimit() -> rlim_t {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
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

/// Where `duplex bench` connects: a ws:// URL.
struct BenchTarget: Sendable {
    var host: String
    var port: Int
    var path: String

    init(_ url: String) throws {
        guard url.hasPrefix("ws://") else {
            throw ValidationError("duplex bench takes a ws:// URL (no TLS): \(url)")
        }
        let rest = url.dropFirst(5)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        path = slash < rest.endIndex ? String(rest[slash...]) : "/"
        var hostPart = Substring(authority)
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw ValidationError("bad host in \(url)") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portPart = after.dropFirst() }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw ValidationError("no host in \(url)") }
        host = String(hostPart)
        if let portPart {
            guard let p = Int(portPart), (1...65535).contains(p) else { throw ValidationError("bad port in \(url)") }
            port = p
        } else {
            port = 80
        }
    }
}
