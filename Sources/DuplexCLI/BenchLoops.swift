import NIOCore
import NIOPosix
import NIOSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The event loops of a run, each with its ``BenchLoop`` state, and the opening and closing of
/// connections on them (connection i on loop i % loops).
struct BenchLoops<State: BenchLoop>: Sendable {
    let loops: [any EventLoop]
    let states: [NIOLoopBound<State>]

    init(group: MultiThreadedEventLoopGroup, _ make: @escaping @Sendable () -> State) async throws {
        var loops: [any EventLoop] = []
        var states: [NIOLoopBound<State>] = []
        for loop in group.makeIterator() {
            loops.append(loop)
            states.append(try await loop.submit { NIOLoopBound(make(), eventLoop: loop) }.get())
        }
        self.loops = loops
        self.states = states
    }

    /// Runs `body` on every loop with its state; its results in loop order.
    func collect<T: Sendable>(_ body: @escaping @Sendable (State) -> T) async throws -> [T] {
        var results: [T] = []
        for (loop, state) in zip(loops, states) {
            results.append(try await loop.submit { body(state.value) }.get())
        }
        return results
    }

    /// Runs `body` on every loop with its state, without waiting.
    func forEach(_ body: @escaping @Sendable (State) -> Void) {
        for (loop, state) in zip(loops, states) { loop.execute { body(state.value) } }
    }

    /// Opens `count` connections, at most `concurrency` being set up at once; connection i binds
    /// `sources`' local address for i, if any. `make` builds each connection's handler on its loop.
    func open(
        count: Int, concurrency: Int, endpoint: BenchEndpoint, sources: BenchSources? = nil,
        make: @escaping @Sendable (State, EventLoopPromise<Void>, any EventLoop) -> BenchConnection
    ) async -> BenchOpening {
        let start = BenchClock.now()
        return await withTaskGroup(of: String?.self) { group in
            var opening = BenchOpening()
            func collect(_ error: String??) {
                guard let error else { return }
                if let error {
                    opening.failed += 1
                    if opening.firstError == nil { opening.firstError = error }
                } else {
                    opening.opened += 1
                }
            }
            for i in 0..<count {
                if i >= concurrency { collect(await group.next()) }
                let loop = loops[i % loops.count]
                let state = states[i % loops.count]
                let local = sources?.address(for: i)
                group.addTask {
                    await Self.connect(endpoint: endpoint, local: local, loop: loop, state: state, make: make)
                }
            }
            while let result = await group.next() { collect(result) }
            opening.seconds = Double(BenchClock.now() - start) / 1e9
            return opening
        }
    }

    /// Connects and upgrades one connection; nil on success, else the error.
    private static func connect(
        endpoint: BenchEndpoint, local: SocketAddress?, loop: any EventLoop, state: NIOLoopBound<State>,
        make: @escaping @Sendable (State, EventLoopPromise<Void>, any EventLoop) -> BenchConnection
    ) async -> String? {
        let upgraded = loop.makePromise(of: Void.self)
        do {
            var bootstrap = ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(Int64(10)))
            if let local {
                #if os(Linux)
                // IP_BIND_ADDRESS_NO_PORT: the port is picked at connect, per 4-tuple.
                bootstrap = bootstrap.channelOption(.ipOption(.init(rawValue: 24)), value: 1)
                #endif
                bootstrap = bootstrap.bind(to: local)
            }
            _ = try await bootstrap
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls = endpoint.tls {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: tls, serverHostname: endpoint.serverName)
                            )
                        }
                        let handler = make(state.value, upgraded, channel.eventLoop)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port)
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
    func closeAll() async {
        for (loop, state) in zip(loops, states) {
            let closing = try? await loop.submit {
                EventLoopFuture.andAllComplete(state.value.closeAll(), on: loop)
            }.get()
            guard let closing else { continue }
            let timeout = loop.scheduleTask(in: .seconds(Int64(3))) { state.value.forceCloseAll() }
            try? await closing.get()
            timeout.cancel()
        }
    }
}

/// How the opening of a run's connections went.
struct BenchOpening: Sendable {
    var opened = 0
    var failed = 0
    var firstError: String?
    var seconds = 0.0

    func summary(of count: Int) -> String {
        "\(opened) open of \(count) in \(Bench.fixed(seconds, 2)) s"
            + (failed > 0 ? ", \(failed) failed (first: \(firstError ?? "?"))" : "")
    }
}

/// Source addresses for more connections to one server than one address has ports:
/// connection i binds 127.0.0.(1 + i / perAddress).
struct BenchSources: Sendable {
    /// Connections per source address: 20,000, or fewer if the ephemeral port range is smaller.
    var perAddress: Int

    func address(for index: Int) -> SocketAddress? {
        try? SocketAddress(ipAddress: "127.0.0.\(1 + index / perAddress)", port: 0)
    }

    /// The source addresses that `count` connections to `host` need: nil when one address is
    /// enough (the kernel picks it). Throws when they do not fit: more than one address is
    /// only possible towards an IPv4 loopback address, and there are 254 of them.
    static func plan(count: Int, host: String) throws -> BenchSources? {
        let perAddress = min(20_000, ephemeralPorts() ?? 20_000)
        guard count > perAddress else { return nil }
        let needed = (count + perAddress - 1) / perAddress
        guard isIPv4Loopback(host) else {
            throw BenchError.usage("""
                \(count) connections need \(needed) source addresses of \(perAddress) ports each; \
                that takes a ws://127.x.y.z URL (connection i binds 127.0.0.(1 + i / \(perAddress))), \
                and \(host) is not one: at most \(perAddress) connections
                """)
        }
        guard needed <= 254 else {
            throw BenchError.usage("\(count) connections need \(needed) source addresses 127.0.0.x of \(perAddress) ports: at most 254")
        }
        return BenchSources(perAddress: perAddress)
    }

    static func isIPv4Loopback(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// The size of the kernel's ephemeral port range (Linux), or nil.
    static func ephemeralPorts() -> Int? {
        #if os(Linux)
        guard let file = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        let text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let bounds = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard bounds.count == 2, bounds[1] >= bounds[0] else { return nil }
        return bounds[1] - bounds[0] + 1
        #else
        return nil
        #endif
    }
}
