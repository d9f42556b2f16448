import ArgumentParser
import Duplex
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import DuplexCLI

/// `duplex connect`: its input commands, its options (short flags like wscat and websocat), and the
/// real command against a server: slash commands, `--show-control`, Ctrl-C sending a close frame.
@Suite struct ConnectCommandTests {
    @Test(arguments: [
        ("hello", true, ConnectInput.message(Array("hello".utf8))),
        ("/ping", false, .message(Array("/ping".utf8))),  // slash commands off: sent as is
        ("//ping", true, .message(Array("/ping".utf8))),
        ("/ping", true, .ping(nil)),
        ("/ping  hi there", true, .ping(Array("hi there".utf8))),
        ("/close", true, .close(.normalClosure, "")),
        ("/close 4000", true, .close(CloseCode(4000), "")),
        ("/close 1001 going away now", true, .close(.goingAway, "going away now")),
        ("/help", true, .help),
    ])
    func inputLines(line: String, slash: Bool, expected: ConnectInput) {
        #expect(ConnectInput.parse(Array(line.utf8), slashCommands: slash) == expected)
    }

    @Test(arguments: ["/close 1005", "/close 999", "/close abc", "/close 1006 dropped", "/bogus", "/",
                      "/ping " + String(repeating: "x", count: 126), "/close 1000 " + String(repeating: "r", count: 124)])
    func invalidCommandsSendNothing(line: String) {
        guard case .invalid(let why) = ConnectInput.parse(Array(line.utf8), slashCommands: true) else {
            Issue.record("\(line) was not refused")
            return
        }
        #expect(!why.isEmpty)
    }

    @Test func shortFlagsMeanWhatWscatAndWebsocatUsersExpect() throws {
        let connect = try Connect.parse(["-H", "X-Token: abc", "-s", "chat.v2", "-s", "chat.v1", "-o", "https://app.example",
                                         "-k", "-b", "-P", "wss://example.com/ws"])
        #expect(connect.binary && connect.insecure && connect.showControl)
        let configuration = try connect.makeConfiguration()
        #expect(configuration.subprotocols == ["chat.v2", "chat.v1"])
        #expect(configuration.headerFields[HTTPField.Name("X-Token")!] == "abc")
        #expect(configuration.origin == "https://app.example")
        #expect(configuration.tls.certificateVerification == .none)
        #expect(configuration.webSocket.onControlFrame != nil)
        #expect(try Connect.parse(["ws://h/"]).makeConfiguration().webSocket.onControlFrame == nil)
    }

    @Test(arguments: [
        ["--cert", "client.pem", "ws://h/"],  // a certificate without its key
        ["--key", "client.key", "ws://h/"],
        ["--slash", "--no-slash", "ws://h/"],
        ["-H", "no colon", "ws://h/"],
    ])
    func invalidOptionsAreRefused(arguments: [String]) {
        #expect(throws: (any Error).self) { _ = try Connect.parse(arguments) }
    }

    @Test func unreadableClientCertificateIsAClearError() throws {
        let connect = try Connect.parse(["--cert", "/nonexistent/client.pem", "--key", "/nonexistent/client.key", "wss://h/"])
        #expect(throws: ValidationError.self) { _ = try connect.makeConfiguration() }
    }

    @Test func slashCommandsAndControlFramesAgainstAServer() async throws {
        try await EchoServer.with { server in
            let client = try DuplexProcess.start(["--slash", "-P", "ws://127.0.0.1:\(server.port)/"])
            try await client.waitFor("connected to", in: .standardError)
            try await client.waitFor("< ping \"srv\"", in: .standardError)  // the server pings on open
            client.write("hello\n/ping abc\n//slashed\n/nope\n/close 4001 done here\nnot sent\n")
            try await client.waitFor("hello\n/slashed\n", in: .standardOutput)
            try await client.waitFor("< pong \"abc\"", in: .standardError)
            try await client.waitFor("pong after ", in: .standardError)
            try await client.waitFor("unknown command /nope", in: .standardError)
            #expect(try await client.exitStatus() == 0, "\(client.standardError)")
            let close = try await server.nextClose()
            #expect(close.code == CloseCode(4001))
            #expect(close.reason == "done here")
            #expect(server.received() == ["hello", "/slashed"])
        }
    }

    @Test func ctrlCSendsACloseFrame() async throws {
        try await EchoServer.with { server in
            let client = try DuplexProcess.start(["ws://127.0.0.1:\(server.port)/"])
            try await client.waitFor("connected to", in: .standardError)
            client.write("before\n")
            try await client.waitFor("before\n", in: .standardOutput)
            client.interrupt()  // stdin stays open: only the SIGINT can end the session
            let close = try await server.nextClose()
            #expect(close.code == .normalClosure)
            #expect(try await client.exitStatus() == 0, "\(client.standardError)")
            #expect(client.standardError.contains("closing (Ctrl-C again quits at once)"))
        }
    }
}

/// An echo server that pings "srv" when a connection opens, and reports what it received and how
/// each connection closed.
final class EchoServer: Sendable {
    let port: Int
    private let state = Mutex<(messages: [String], closes: [CloseFrame])>(([], []))

    private init(port: Int) { self.port = port }

    static func with(_ body: (EchoServer) async throws -> Void) async throws {
        let box = Mutex<EchoServer?>(nil)
        var router = WebSocketRouter()
        router.webSocket("/", WebSocketEndpoint(callbacks: WebSocketCallbacks(
            onOpen: { ws in try? ws.ping(ByteBuffer(string: "srv")) },
            onMessage: { ws, data in
                box.withLock { $0?.state.withLock { $0.messages.append(String(buffer: data.bytes)) } }
                ws.send(data)
            },
            onClose: { _, frame in box.withLock { $0?.state.withLock { $0.closes.append(frame) } } }
        )))
        var logger = Logger(label: "duplex.test")
        logger.logLevel = .critical
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0), router: router,
                                     group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let echo = EchoServer(port: try #require(try await server.start().port))
        box.withLock { $0 = echo }
        do {
            try await body(echo)
        } catch {
            await server.shutdown(gracePeriod: .milliseconds(100))
            throw error
        }
        await server.shutdown(gracePeriod: .milliseconds(100))
    }

    func received() -> [String] { state.withLock { $0.messages } }

    /// The first close frame the server got, waiting up to 10 s for it.
    func nextClose() async throws -> CloseFrame {
        for _ in 0..<1000 {
            if let frame = state.withLock({ $0.closes.first }) { return frame }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw DuplexProcess.Failure("the server saw no close within 10 s")
    }
}

/// The built `duplex` (`connect` by default) as a child process, with its stdin, stdout and stderr as pipes.
final class DuplexProcess: Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
    enum Stream { case standardOutput, standardError }

    private let process: Process
    private let input: FileHandle
    private let output = Mutex<(out: String, err: String)>(("", ""))

    private init(process: Process, input: FileHandle) {
        self.process = process
        self.input = input
    }

    /// The `duplex` executable next to the test bundle (`swift build --build-tests` builds both).
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("duplex")
    }

    /// `duplex connect --ping-interval 0 ARGUMENTS...`.
    static func start(_ arguments: [String]) throws -> DuplexProcess {
        try run(["connect", "--ping-interval", "0"] + arguments)
    }

    /// `duplex ARGUMENTS...`.
    static func run(_ arguments: [String]) throws -> DuplexProcess {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw Failure("no duplex executable at \(executable.path): run `swift build` first")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let child = DuplexProcess(process: process, input: stdin.fileHandleForWriting)
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            child.output.withLock { $0.out += text }
        }
        stderr.fileHandleForReading.readabilityHandler = { handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            child.output.withLock { $0.err += text }
        }
        try process.run()
        return child
    }

    var standardOutput: String { output.withLock { $0.out } }
    var standardError: String { output.withLock { $0.err } }

    func write(_ text: String) { input.write(Data(text.utf8)) }
    func interrupt() { process.interrupt() }
    func terminate() { process.terminate() }

    /// Waits up to 10 s for `text` to appear on a stream.
    func waitFor(_ text: String, in stream: Stream) async throws {
        for _ in 0..<1000 {
            let seen = stream == .standardOutput ? standardOutput : standardError
            if seen.contains(text) { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        process.terminate()
        throw Failure("no \(text.debugDescription) within 10 s; stdout: \(standardOutput.debugDescription), stderr: \(standardError.debugDescription)")
    }

    /// The exit status, waiting up to 10 s for the process to end (then killing it).
    func exitStatus() async throws -> Int32 {
        for _ in 0..<1000 where process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        guard !process.isRunning else {
            process.terminate()
            throw Failure("duplex still running after 10 s; stderr: \(standardError.debugDescription)")
        }
        return process.terminationStatus
    }
}
