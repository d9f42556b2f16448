import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A broker server started by the test itself, on a free 127.0.0.1 port, in a folder of its own.
protocol BrokerProcess: Sendable {
    var port: Int { get }
    func stop() throws
    func start() throws
}

/// Why a broker test could not run: the binary is missing, or the server did not come up.
struct BrokerSetupFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs blocking work (initdb, pg_ctl) on a thread of its own, not on Swift's cooperative pool:
/// with two cores that pool has two threads, and blocking them for seconds stalls every test in
/// the process.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
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
    static func freePort() throws -> Int {
        for _ in 0..<50 {
            let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).wait()
            defer { try? channel.close().wait() }
            guard let port = channel.localAddress?.port else { throw BrokerSetupFailure("no free port") }
            if handedOut.withLockedValue({ $0.insert(port).inserted }) { return port }
        }
        throw BrokerSetupFailure("no port that was not handed out already")
    }

    private static let handedOut = NIOLockedValueBox<Set<Int>>([])

    /// Waits until something accepts connections on 127.0.0.1:`port`.
    static func waitForPort(_ port: Int, what: String, timeout: TimeInterval = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let channel = try? ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(200)).connect(host: "127.0.0.1", port: port).wait() {
                try? channel.close().wait()
                return
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw BrokerSetupFailure("\(what) did not listen on 127.0.0.1:\(port) within \(Int(timeout)) s")
    }

    /// Ends `process` with SIGKILL (a crash, as far as its clients can tell) and waits until its
    /// port is free. Not SIGTERM: the test process ignores it (its signal handling), and a child
    /// inherits that.
    static func terminate(_ process: Process, port: Int, what: String) throws {
        kill(process.processIdentifier, SIGKILL)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let freed = Date().addingTimeInterval(5)
        while Date() < freed {
            guard let channel = try? ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.milliseconds(200)).connect(host: "127.0.0.1", port: port).wait() else { return }
            try? channel.close().wait()
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw BrokerSetupFailure("\(what) still listens on 127.0.0.1:\(port) after it was stopped")
    }

    /// A new empty folder under the system's temporary folder.
    static func temporaryFolder(_ prefix: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// `redis-server` (Debian's package `redis-server`) without persistence, on a free port.
final class RedisProcess: BrokerProcess, @unchecked Sendable {
    private(set) var port: Int = 0
    private let binary: String
    private let folder: URL
    private let lock = NSLock()
    private var process: Process?

    /// Starts one. Throws (failing the test) when `redis-server` is not installed.
    init() throws {
        binary = try BrokerBinaries.find("redis-server", in: ["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
                                         package: "redis-server")
        folder = try BrokerBinaries.temporaryFolder("duplex-redis")
        // A port released by freePort can be taken by a server of another test binding port 0
        // before redis-server binds it: then try another.
        var attempt = 0
        while true {
            port = try BrokerBinaries.freePort()
            do {
                try start()
                return
            } catch let error as BrokerSetupFailure where attempt < 5 && error.description.contains("exited at start") {
                attempt += 1
            }
        }
    }

    deinit {
        try? stop()
        try? FileManager.default.removeItem(at: folder)
    }

    var url: String { "redis://127.0.0.1:\(port)" }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", folder.path, "--logfile", folder.appendingPathComponent("redis.log").path]
        try process.run()
        lock.withLock { self.process = process }
        try BrokerBinaries.waitForPort(port, what: "redis-server")
        // Another process on the port would answer instead (redis-server exits when it cannot bind).
        usleep(20_000)
        guard process.isRunning else {
            lock.withLock { self.process = nil }
            throw BrokerSetupFailure("redis-server exited at start (port \(port) taken?)")
        }
    }

    func stop() throws {
        guard let process = lock.withLock({ () -> Process? in defer { self.process = nil }; return self.process }) else { return }
        try BrokerBinaries.terminate(process, port: port, what: "redis-server")
    }
}
