import Foundation
import Testing

/// `duplex serve --broker` as a process: a wrong or unreachable broker is a clear error and a
/// non-zero exit at once, never a hang, and its password is not printed. One `duplex` at a time
/// (serialized): eight debug binaries starting at once took seconds of CPU from the rest of
/// `swift test`.
@Suite(.serialized, .timeLimit(.minutes(1))) struct ServeBrokerCommandTests {
    /// "At once": well under the 40 s after which a hang is killed. Not less: starting a debug
    /// `duplex` took 11.5 s once while the whole `swift test` shared two loaded cores.
    static let fast = 25.0

    struct Outcome {
        var status: Int32
        var output: String
        var seconds: Double
    }

    /// Runs the `duplex` built next to the tests with `arguments` and `environment` added, killed after 40 s.
    static func duplex(_ arguments: [String], environment: [String: String] = [:]) async throws -> Outcome {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var executable: URL?
        for _ in 0..<4 where executable == nil {
            let candidate = directory.appendingPathComponent("duplex")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { executable = candidate }
            directory.deleteLastPathComponent()
        }
        let binary = try #require(executable, "no duplex executable next to the tests: swift build --build-tests")
        let folder = try BrokerBinaries.temporaryFolder("duplex-serve")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The environment goes through env(1): Foundation's Process takes it as a whole.
        let variables = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let started = ContinuousClock.now
        let child = try await ChildProcess.launch("/usr/bin/env", variables + [binary.path] + arguments,
                                                  log: folder.appendingPathComponent("output"))
        var status = try await child.exitStatus(within: .seconds(40))
        if status == nil {
            child.signal(SIGKILL)
            status = await child.exitStatus()
        }
        let elapsed = ContinuousClock.now - started
        return Outcome(status: status ?? -1, output: child.output(last: 100_000),
                       seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    @Test func anUnreachableBrokerExitsAtOnceWithAClearMessage() async throws {
        let port = try await BrokerBinaries.freePort()  // nothing listens there
        let outcome = try await Self.duplex(["serve", "--port", "0", "--broker", "redis://:hunter2@127.0.0.1:\(port)"])
        #expect(outcome.status != 0)
        #expect(outcome.seconds < Self.fast)
        #expect(outcome.output.contains("cannot connect to redis://:***@127.0.0.1:\(port)"), "\(outcome.output)")
        #expect(!outcome.output.contains("hunter2"))
        #expect(!outcome.output.contains("listening"))
    }

    @Test func anUnreachablePostgresExitsAtOnceWithAClearMessage() async throws {
        let port = try await BrokerBinaries.freePort()
        let outcome = try await Self.duplex(["serve", "--port", "0", "--broker", "postgres://app:hunter2@127.0.0.1:\(port)/app"])
        #expect(outcome.status != 0)
        #expect(outcome.seconds < Self.fast)
        #expect(outcome.output.contains("cannot connect to postgres://app:***@127.0.0.1:\(port)/app"), "\(outcome.output)")
        #expect(!outcome.output.contains("hunter2"))
    }

    @Test func aBrokerThatRefusesTheCredentialsExitsWithTheReason() async throws {
        let redis = try await SharedBrokers.shared.redisServer()
        let outcome = try await Self.duplex(["serve", "--port", "0"],
                                            environment: ["DUPLEX_BROKER": "redis://:hunter2@127.0.0.1:\(redis.port)/1"])
        #expect(outcome.status != 0)
        #expect(outcome.output.contains("refused the connection"), "\(outcome.output)")
        #expect(outcome.output.contains("AUTH"), "\(outcome.output)")
        #expect(!outcome.output.contains("hunter2"))
    }

    @Test(arguments: ["http://127.0.0.1:6379", "redis://127.0.0.1:6379/notanumber", "redis:/x", "nats://h", "postgres://127.0.0.1/db"])
    func aMalformedBrokerURLExitsWithWhatIsWrong(url: String) async throws {
        let outcome = try await Self.duplex(["serve", "--port", "0", "--broker", url])
        #expect(outcome.status != 0)
        #expect(outcome.output.contains("duplex serve: "), "\(outcome.output)")
        #expect(outcome.seconds < Self.fast)
    }
}
