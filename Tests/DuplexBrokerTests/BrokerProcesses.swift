import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

// Broker servers that the tests start themselves. Nothing here blocks a thread of Swift's
// cooperative pool: with two cores it has two threads, and the whole `swift test` runs hundreds of
// tests on them. Processes are started with Foundation's `Process.run()` (on one long-lived thread,
// `Launcher`), their end is awaited through `terminationHandler`, readiness is polled with
// `Task.sleep`, NIO futures are awaited with `.get()`, and nothing runs in a deinit.

/// A broker server started by the test itself, on a free 127.0.0.1 port, in a folder of its own.
protocol BrokerProcess: Sendable {
    var port: Int { get }
    func stop() async throws
    func start() async throws
}

/// Why a broker test could not run: the binary is missing, or the server did not come up.
struct BrokerSetupFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One long-lived thread that starts every child process. A child started from a thread that then
/// ends was seen to die with it (redis-server started from a short-lived `Thread`), and the
/// cooperative pool's threads can end when idle; this thread never ends.
enum Launcher {
    private static let jobs = LaunchJobs()

    /// Runs `body` on the launcher thread; it must not block (`Process.run()` does not).
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            jobs.add { continuation.resume(with: Result { try body() }) }
        }
    }
}

private final class LaunchJobs: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [@Sendable () -> Void] = []
    private var started = false

    func add(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        pending.append(job)
        if !started {
            started = true
            let thread = Thread { [self] in loop() }
            thread.name = "duplex-broker-tests-launcher"
            thread.start()
        }
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty { condition.wait() }
            let job = pending.removeFirst()
            condition.unlock()
            job()
        }
    }
}

/// A child process: started by `Launcher`, its output in a file, its end noticed by Foundation's
/// `terminationHandler` and handed to whoever awaits it.
final class ChildProcess: @unchecked Sendable {
    let log: URL
    private let lock = NSLock()
    private var processID: Int32 = 0
    private var status: Int32?
    private var waiters: [CheckedContinuation<Int32, Never>] = []

    private init(log: URL) { self.log = log }

    var pid: Int32 { lock.withLock { processID } }

    /// Starts `path` with `arguments`; stdin is /dev/null, stdout and stderr go to `log` (a file,
    /// not a pipe: nothing has to read it while the process runs).
    static func launch(_ path: String, _ arguments: [String], log: URL) async throws -> ChildProcess {
        let child = ChildProcess(log: log)
        try await Launcher.run {
            guard FileManager.default.createFile(atPath: log.path, contents: nil) else {
                throw BrokerSetupFailure("cannot create \(log.path)")
            }
            let output = try FileHandle(forWritingTo: log)
            defer { try? output.close() }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = output
            process.standardError = output
            process.terminationHandler = { process in
                child.ended(process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus)
            }
            do {
                try process.run()
            } catch {
                throw BrokerSetupFailure("cannot run \(path): \(error)")
            }
            let pid = process.processIdentifier
            child.lock.withLock { child.processID = pid }
        }
        return child
    }

    private func ended(_ status: Int32) {
        let waiting = lock.withLock { () -> [CheckedContinuation<Int32, Never>] in
            self.status = status
            defer { waiters = [] }
            return waiters
        }
        for waiter in waiting { waiter.resume(returning: status) }
    }

    var hasExited: Bool { lock.withLock { status != nil } }

    /// The exit status (128 + the signal when a signal ended it), once it ended.
    func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            let ended = lock.withLock { () -> Int32? in
                if status == nil { waiters.append(continuation) }
                return status
            }
            if let ended { continuation.resume(returning: ended) }
        }
    }

    /// The exit status if it ends within `timeout`, nil if it still runs.
    func exitStatus(within timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = lock.withLock({ status }) { return status }
            try await Task.sleep(for: .milliseconds(10))
        }
        return lock.withLock { status }
    }

    func signal(_ signal: Int32) {
        if !hasExited { kill(pid, signal) }
    }

    /// The last `characters` of what it printed.
    func output(last characters: Int = 2_000) -> String {
        String(((try? String(contentsOf: log, encoding: .utf8)) ?? "").suffix(characters))
    }

    /// Runs a command to its end; throws with its output if it fails.
    static func runToEnd(_ path: String, _ arguments: [String], log: URL, timeout: Duration = .seconds(60)) async throws {
        let child = try await launch(path, arguments, log: log)
        guard let status = try await child.exitStatus(within: timeout) else {
            child.signal(SIGKILL)
            throw BrokerSetupFailure("\(path) \(arguments.joined(separator: " ")) did not end within \(timeout)")
        }
        guard status == 0 else {
            throw BrokerSetupFailure("\(path) \(arguments.joined(separator: " ")) failed (status \(status)): \(child.output())")
        }
    }
}

/// What to end when the test process exits: every broker the tests started (they are in folders
/// of their own under the temporary folder, removed as well).
enum BrokerCleanup {
    private static let state = NIOLockedValueBox<(pids: [Int32: Int32], folders: Set<String>)>(([:], []))
    private static let registered: Void = { atexit { BrokerCleanup.runAtExit() } }()

    /// `pid` gets `signal` at exit unless `forget` is called first.
    static func remember(pid: Int32, signal: Int32) {
        _ = registered
        state.withLockedValue { $0.pids[pid] = signal }
    }

    static func forget(pid: Int32) { state.withLockedValue { _ = $0.pids.removeValue(forKey: pid) } }

    static func remember(folder: URL) {
        _ = registered
        state.withLockedValue { _ = $0.folders.insert(folder.path) }
    }

    /// At exit (the tests are over, so waiting here holds up nothing): signals every broker, waits
    /// up to 5 s for them to end (PostgreSQL writes into its folder while it shuts down, which
    /// would leave the folder behind), then removes the folders.
    private static func runAtExit() {
        let (pids, folders) = state.withLockedValue { $0 }
        for (pid, signal) in pids { kill(pid, signal) }
        var running = Set(pids.keys)
        for _ in 0..<500 where !running.isEmpty {
            // Ended: reaped here (pid) or already by Foundation (-1, ECHILD). 0: still running.
            running = running.filter { pid in
                var status: Int32 = 0
                return waitpid(pid, &status, WNOHANG) == 0
            }
            if !running.isEmpty { usleep(10_000) }
        }
        for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
    }
}

enum BrokerBinaries {
    /// The first of `paths` that is an executable, or a failure saying how to install it (no silent skip).
    static func find(_ name: String, in paths: [String], package: String) throws -> String {
        if let path = paths.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return path }
        throw BrokerSetupFailure("\(name) is not installed (looked in \(paths.joined(separator: ", "))): "
                                 + "run `apt-get install -y \(package)` (.ci/run installs it)")
    }

    /// A free TCP port on 127.0.0.1 (bound, read, released), never one handed out before in this
    /// process: the kernel can give a just-released port again, and two tests must not share one.
    static func freePort() async throws -> Int {
        for _ in 0..<50 {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).get()
            let port = channel.localAddress?.port
            try? await channel.close().get()
            guard let port else { throw BrokerSetupFailure("no free port") }
            if handedOut.withLockedValue({ $0.insert(port).inserted }) { return port }
        }
        throw BrokerSetupFailure("no port that was not handed out already")
    }

    private static let handedOut = NIOLockedValueBox<Set<Int>>([])

    /// `make(port)` started on a free port. A port released by `freePort` can be taken by a server
    /// of another test binding port 0 before the broker binds it (it then exits at start): then
    /// another port is tried, five times at most.
    static func startedOnAFreePort<Broker: BrokerProcess>(_ make: (Int) -> Broker) async throws -> Broker {
        var attempt = 0
        while true {
            let broker = make(try await freePort())
            do {
                try await broker.start()
                return broker
            } catch let error as BrokerSetupFailure where attempt < 5 && error.description.contains("exited at start") {
                attempt += 1
            }
        }
    }

    /// Whether something accepts connections on 127.0.0.1:`port` now.
    static func accepts(_ port: Int) async -> Bool {
        guard let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(200)).connect(host: "127.0.0.1", port: port).get() else { return false }
        try? await channel.close().get()
        return true
    }

    /// Waits until something accepts connections on 127.0.0.1:`port`, as long as `child` runs.
    static func waitForPort(_ port: Int, what: String, child: ChildProcess, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if child.hasExited { throw BrokerSetupFailure("\(what) exited at start (port \(port) taken?): \(child.output())") }
            if await accepts(port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BrokerSetupFailure("\(what) did not listen on 127.0.0.1:\(port) within \(timeout): \(child.output())")
    }

    /// Waits until nothing accepts connections on 127.0.0.1:`port`.
    static func waitUntilFree(_ port: Int, what: String, timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !(await accepts(port)) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BrokerSetupFailure("\(what) still listens on 127.0.0.1:\(port) after it was stopped")
    }

    /// A new empty folder under the system's temporary folder, removed when the test process exits.
    static func temporaryFolder(_ prefix: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        BrokerCleanup.remember(folder: url)
        return url
    }
}

/// The brokers shared by the tests of one test process: each is started once, at its first use.
/// A test that changes its broker (stops it, sets a password) starts one of its own instead.
actor SharedBrokers {
    static let shared = SharedBrokers()
    private var redis: Task<RedisProcess, any Error>?
    private var postgres: Task<PostgresProcess, any Error>?

    func redisServer() async throws -> RedisProcess {
        let task = redis ?? Task { try await RedisProcess.start() }
        redis = task
        return try await task.value
    }

    private var template: Task<URL, any Error>?

    /// The data folder that `initdb` made once, for each PostgreSQL of the tests to copy.
    func postgresTemplate(bin: String, asUser: [String]) async throws -> URL {
        let task = template ?? Task { try await PostgresProcess.makeTemplate(bin: bin, asUser: asUser) }
        template = task
        return try await task.value
    }

    func postgresServer() async throws -> PostgresProcess {
        let task = postgres ?? Task { try await PostgresProcess.start() }
        postgres = task
        return try await task.value
    }
}

/// `redis-server` (Debian's package `redis-server`) without persistence, on a free port.
final class RedisProcess: BrokerProcess, @unchecked Sendable {
    let port: Int
    private let binary: String
    private let folder: URL
    private let child = NIOLockedValueBox<ChildProcess?>(nil)

    private init(port: Int, binary: String, folder: URL) {
        self.port = port
        self.binary = binary
        self.folder = folder
    }

    /// Starts one. Throws (failing the test) when `redis-server` is not installed.
    static func start() async throws -> RedisProcess {
        let binary = try BrokerBinaries.find("redis-server", in: ["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
                                             package: "redis-server")
        let folder = try BrokerBinaries.temporaryFolder("duplex-redis")
        return try await BrokerBinaries.startedOnAFreePort { RedisProcess(port: $0, binary: binary, folder: folder) }
    }

    var url: String { "redis://127.0.0.1:\(port)" }

    func start() async throws {
        let child = try await ChildProcess.launch(
            binary, ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder.path],
            log: folder.appendingPathComponent("redis-\(port).log"))
        BrokerCleanup.remember(pid: child.pid, signal: SIGKILL)
        self.child.withLockedValue { $0 = child }
        try await BrokerBinaries.waitForPort(port, what: "redis-server", child: child)
        // Another process on the port would answer instead (redis-server exits when it cannot bind).
        try await Task.sleep(for: .milliseconds(20))
        if child.hasExited {
            self.child.withLockedValue { $0 = nil }
            throw BrokerSetupFailure("redis-server exited at start (port \(port) taken?): \(child.output())")
        }
    }

    /// Ends it with SIGKILL (a crash, as far as its clients can tell) and waits until its port is free.
    func stop() async throws {
        guard let child = child.withLockedValue({ child in defer { child = nil }; return child }) else { return }
        child.signal(SIGKILL)
        guard try await child.exitStatus(within: .seconds(20)) != nil else {
            throw BrokerSetupFailure("redis-server (pid \(child.pid)) did not end after SIGKILL")
        }
        BrokerCleanup.forget(pid: child.pid)
        try await BrokerBinaries.waitUntilFree(port, what: "redis-server")
    }
}

/// The helpers themselves: a missing broker fails the test with what to install.
@Suite struct BrokerSetupTests {
    @Test func aMissingBrokerIsAFailureThatSaysWhatToInstall() throws {
        #expect {
            _ = try BrokerBinaries.find("redis-server", in: ["/nonexistent/redis-server"], package: "redis-server")
        } throws: { error in
            "\(error)".contains("redis-server is not installed") && "\(error)".contains("apt-get install -y redis-server")
        }
    }

    @Test func aChildProcessEndIsAwaitedWithItsStatusAndOutput() async throws {
        let folder = try BrokerBinaries.temporaryFolder("duplex-child")
        let child = try await ChildProcess.launch("/bin/sh", ["-c", "echo out; exit 3"], log: folder.appendingPathComponent("log"))
        #expect(await child.exitStatus() == 3)
        #expect(child.output() == "out\n")
        await #expect(throws: BrokerSetupFailure.self) {
            try await ChildProcess.runToEnd("/bin/sh", ["-c", "exit 1"], log: folder.appendingPathComponent("log2"))
        }
    }
}
