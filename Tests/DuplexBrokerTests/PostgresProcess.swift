import Foundation
import NIOConcurrencyHelpers

/// A PostgreSQL server (Debian's package `postgresql`) made with `initdb` in a folder of its own
/// and run as a child process (`postgres`, not `pg_ctl`, so it is ours to stop and to wait for) on
/// a free port. PostgreSQL refuses to run as root: when the tests run as root, `initdb` and the
/// server run as the `postgres` user that the package creates (through `setpriv`, which executes
/// the program itself rather than a child of its own). Trust authentication on 127.0.0.1,
/// database `postgres`.
final class PostgresProcess: BrokerProcess, @unchecked Sendable {
    let port: Int
    private let bin: String
    private let folder: URL
    /// `setpriv` and its arguments when the server runs as `postgres`; empty otherwise.
    private let asUser: [String]
    private let child = NIOLockedValueBox<ChildProcess?>(nil)

    private init(port: Int, bin: String, folder: URL, asUser: [String]) {
        self.port = port
        self.bin = bin
        self.folder = folder
        self.asUser = asUser
    }

    /// Makes (a copy of the cluster `initdb` made once) and starts one. Throws (failing the test)
    /// when PostgreSQL is not installed.
    static func start() async throws -> PostgresProcess {
        let initdb = try BrokerBinaries.find("initdb", in: (15...18).map { "/usr/lib/postgresql/\($0)/bin/initdb" },
                                             package: "postgresql")
        let bin = URL(fileURLWithPath: initdb).deletingLastPathComponent().path
        let folder = try BrokerBinaries.temporaryFolder("duplex-postgres")
        var asUser: [String] = []
        if getuid() == 0 {
            guard let user = getpwnam("postgres") else {
                throw BrokerSetupFailure("the tests run as root and there is no `postgres` user to run PostgreSQL as "
                                         + "(PostgreSQL refuses root): run `apt-get install -y postgresql`, which creates it")
            }
            let setpriv = try BrokerBinaries.find("setpriv", in: ["/usr/bin/setpriv", "/bin/setpriv"], package: "util-linux")
            asUser = [setpriv, "--reuid=\(user.pointee.pw_uid)", "--regid=\(user.pointee.pw_gid)", "--clear-groups", "--"]
        }
        try giveToServerUser(folder, asUser: asUser)
        // The cluster is a copy of one made by initdb once per test process (initdb takes seconds of CPU).
        let template = try await SharedBrokers.shared.postgresTemplate(bin: bin, asUser: asUser)
        let data = folder.appendingPathComponent("data").path
        try await ChildProcess.runToEnd("/bin/cp", ["-a", template.path, data], log: folder.appendingPathComponent("copy.log"))
        return try await BrokerBinaries.startedOnAFreePort { PostgresProcess(port: $0, bin: bin, folder: folder, asUser: asUser) }
    }

    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }
    private var data: String { folder.appendingPathComponent("data").path }

    /// Starts the server and waits until it accepts connections (`postmaster.pid` says `ready`,
    /// as `pg_ctl -w` checks, and the port answers).
    func start() async throws {
        let command = Self.command(asUser, "\(bin)/postgres", ["-D", data, "-p", "\(port)", "-k", folder.path,
                                                              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                                              "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        let child = try await ChildProcess.launch(command.path, command.arguments,
                                                  log: folder.appendingPathComponent("postgres-\(port).log"))
        // SIGQUIT is an immediate shutdown: the server ends its backends and exits.
        BrokerCleanup.remember(pid: child.pid, signal: SIGQUIT)
        self.child.withLockedValue { $0 = child }
        let pidFile = URL(fileURLWithPath: data).appendingPathComponent("postmaster.pid")
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if child.hasExited {
                self.child.withLockedValue { $0 = nil }
                BrokerCleanup.forget(pid: child.pid)
                throw BrokerSetupFailure("PostgreSQL exited at start (port \(port) taken?): \(child.output())")
            }
            let lines = ((try? String(contentsOf: pidFile, encoding: .utf8)) ?? "").split(separator: "\n", omittingEmptySubsequences: false)
            if lines.count > 7, lines[0].trimmingCharacters(in: .whitespaces) == "\(child.pid)",
               lines[7].trimmingCharacters(in: .whitespaces) == "ready", await BrokerBinaries.accepts(port) {
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BrokerSetupFailure("PostgreSQL did not get ready on 127.0.0.1:\(port) within 30 s: \(child.output())")
    }

    /// A cluster made by `initdb` in a folder of its own, to be copied (trust authentication on
    /// 127.0.0.1, user `postgres`).
    static func makeTemplate(bin: String, asUser: [String]) async throws -> URL {
        let folder = try BrokerBinaries.temporaryFolder("duplex-postgres-template")
        try giveToServerUser(folder, asUser: asUser)
        let data = folder.appendingPathComponent("data")
        let command = Self.command(asUser, "\(bin)/initdb", ["-D", data.path, "-U", "postgres", "-A", "trust", "--no-sync",
                                                            "-E", "UTF8", "--no-instructions"])
        try await ChildProcess.runToEnd(command.path, command.arguments, log: folder.appendingPathComponent("initdb.log"))
        return data
    }

    /// Makes `folder` the server user's when the server runs as `postgres` (`asUser` not empty).
    private static func giveToServerUser(_ folder: URL, asUser: [String]) throws {
        guard !asUser.isEmpty, let user = getpwnam("postgres") else { return }
        guard chown(folder.path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
            throw BrokerSetupFailure("cannot give \(folder.path) to the postgres user: errno \(errno)")
        }
    }

    /// `program` with `arguments`, through `asUser` (setpriv) when that is not empty.
    private static func command(_ asUser: [String], _ program: String, _ arguments: [String]) -> (path: String, arguments: [String]) {
        guard let setpriv = asUser.first else { return (program, arguments) }
        return (setpriv, Array(asUser.dropFirst()) + [program] + arguments)
    }

    /// An immediate shutdown (SIGQUIT; SIGKILL if it does not end in 10 s); waits until it ended
    /// and its port is free.
    func stop() async throws {
        guard let child = child.withLockedValue({ child in defer { child = nil }; return child }) else { return }
        child.signal(SIGQUIT)
        if try await child.exitStatus(within: .seconds(10)) == nil {
            child.signal(SIGKILL)
            guard try await child.exitStatus(within: .seconds(5)) != nil else {
                throw BrokerSetupFailure("PostgreSQL (pid \(child.pid)) did not end after SIGQUIT and SIGKILL")
            }
        }
        BrokerCleanup.forget(pid: child.pid)
        try await BrokerBinaries.waitUntilFree(port, what: "PostgreSQL")
    }
}
