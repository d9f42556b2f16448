import Foundation

/// A PostgreSQL 15 server (Debian's package `postgresql`) made with `initdb` in a folder of its own
/// and run with `pg_ctl` on a free port; as the `postgres` user when the tests run as root
/// (PostgreSQL refuses root). Trust authentication on 127.0.0.1, database `postgres`.
final class PostgresProcess: BrokerProcess, @unchecked Sendable {
    private(set) var port: Int = 0
    private let bin: String
    private let folder: URL
    private let asPostgres: Bool

    /// Makes and starts one on a thread of its own (initdb takes seconds). Throws (failing the
    /// test) when PostgreSQL is not installed.
    static func make() async throws -> PostgresProcess {
        try await onThread { try PostgresProcess() }
    }

    private init() throws {
        let initdb = try BrokerBinaries.find("initdb", in: ["/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/16/bin/initdb",
                                                            "/usr/lib/postgresql/17/bin/initdb"], package: "postgresql")
        bin = URL(fileURLWithPath: initdb).deletingLastPathComponent().path
        asPostgres = getuid() == 0
        folder = try BrokerBinaries.temporaryFolder("duplex-postgres")
        if asPostgres { try Self.run("/bin/chown", ["-R", "postgres:postgres", folder.path], output: folder) }
        try command("\(bin)/initdb", ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        // A port released by freePort can be taken by a server of another test binding port 0
        // before PostgreSQL binds it: then try another.
        var attempt = 0
        while true {
            port = try BrokerBinaries.freePort()
            do {
                try start()
                return
            } catch where attempt < 5 {
                attempt += 1
            }
        }
    }

    deinit {
        try? stop()
        try? FileManager.default.removeItem(at: folder)
    }

    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }
    private var data: String { folder.appendingPathComponent("data").path }

    func start() throws {
        try command("\(bin)/pg_ctl", ["-D", data, "-l", folder.appendingPathComponent("log").path, "-w", "-t", "20",
                                      "-o", "-p \(port) -k \(folder.path) -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        try BrokerBinaries.waitForPort(port, what: "PostgreSQL")
    }

    func stop() throws {
        try command("\(bin)/pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"])
    }

    private func command(_ path: String, _ arguments: [String]) throws {
        if asPostgres {
            try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", path] + arguments, output: folder)
        } else {
            try Self.run(path, arguments, output: folder)
        }
    }

    /// Runs a command to its end, its output into a file in `output` (not a pipe: the server that
    /// `pg_ctl start` leaves running would hold a pipe open); throws with that output if it fails.
    /// posix_spawn and waitpid rather than Foundation's Process, whose end this test process does
    /// not always notice.
    static func run(_ path: String, _ arguments: [String], output: URL) throws {
        let log = output.appendingPathComponent("command-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal handling in the child: this process ignores some signals, and a child inherits that.
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard spawned == 0 else { throw BrokerSetupFailure("cannot run \(path): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exited = (status & 0x7F) == 0
        let code = (status >> 8) & 0xFF
        guard exited && code == 0 else {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw BrokerSetupFailure("\(path) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
        }
    }
}
