import Duplex
import DuplexCore
import Foundation
import Testing

/// `duplex connect`, run as a process with stdin and stdout in pipes.
@Suite struct ClientCLITests {
    struct Outcome: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The `duplex` executable built next to the test bundle.
    static func executable() throws -> URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // On some platforms the runner sits inside a bundle (…/DuplexPackageTests.xctest/Contents/MacOS).
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("duplex")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory.deleteLastPathComponent()
        }
        throw ClientTestFailure("no duplex executable next to \(CommandLine.arguments[0]); build with --build-tests")
    }

    /// Runs `duplex ARGS`, writing `input` to its stdin and then closing it (unless `input` is nil:
    /// stdin stays open until the process ended).
    static func duplex(_ arguments: [String], input: String?) async throws -> Outcome {
        let executable = try executable()
        return try await withTimeLimit(20, "duplex \(arguments.joined(separator: " "))") {
            try await withCheckedThrowingContinuation { continuation in
                let thread = Thread {
                    let process = Process()
                    process.executableURL = executable
                    process.arguments = arguments
                    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
                    process.standardInput = stdin
                    process.standardOutput = stdout
                    process.standardError = stderr
                    do {
                        try process.run()
                    } catch {
                        continuation.resume(throwing: error)
                        return
                    }
                    if let input {
                        stdin.fileHandleForWriting.write(Data(input.utf8))
                        try? stdin.fileHandleForWriting.close()
                    }
                    // Drain stderr on the side so neither pipe can fill up and stall the process.
                    let errorData = DataBox()
                    let errorDone = DispatchSemaphore(value: 0)
                    Thread {
                        errorData.set(stderr.fileHandleForReading.readDataToEndOfFile())
                        errorDone.signal()
                    }.start()
                    let outputData = stdout.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    try? stdin.fileHandleForWriting.close()
                    errorDone.wait()
                    let errorText = String(decoding: errorData.get(), as: UTF8.self)
                    continuation.resume(returning: Outcome(status: process.terminationStatus,
                                                           stdout: String(decoding: outputData, as: UTF8.self), stderr: errorText))
                }
                thread.start()
            }
        }
    }

    @Test func echoInAPipe() async throws {
        try await withClientTestServer { port in
            let outcome = try await Self.duplex(["connect", "ws://127.0.0.1:\(port)/echo"], input: "hi\n")
            #expect(outcome.stdout == "hi\n")
            #expect(outcome.status == 0, "\(outcome.stderr)")
            #expect(outcome.stderr.contains("closed: 1000 (normal closure)"), "\(outcome.stderr)")
        }
    }

    @Test func manyLinesInOrder() async throws {
        try await withClientTestServer { port in
            let lines = (1...200).map { "line \($0) ✓" }
            let outcome = try await Self.duplex(["connect", "--ping-interval", "0", "ws://127.0.0.1:\(port)/echo"],
                                                input: lines.joined(separator: "\n") + "\r\n")
            #expect(outcome.stdout == lines.joined(separator: "\n") + "\n")
            #expect(outcome.status == 0, "\(outcome.stderr)")
        }
    }

    @Test func binaryAsHexAndBase64() async throws {
        try await withClientTestServer { port in
            let hex = try await Self.duplex(["connect", "--binary", "ws://127.0.0.1:\(port)/echo"], input: "AB\n\n")
            #expect(hex.stdout == "4142\n\n")
            #expect(hex.status == 0, "\(hex.stderr)")
            let base64 = try await Self.duplex(["connect", "--binary", "--base64", "ws://127.0.0.1:\(port)/echo"], input: "hello\n")
            #expect(base64.stdout == "aGVsbG8=\n")
            #expect(base64.status == 0, "\(base64.stderr)")
        }
    }

    @Test func headersOriginAndSubprotocol() async throws {
        try await withClientTestServer { port in
            let outcome = try await Self.duplex([
                "connect", "--subprotocol", "x", "--subprotocol", "chat.v1", "--header", "X-Test: 7",
                "--header", "Authorization:Bearer z", "--origin", "https://o.example", "ws://127.0.0.1:\(port)/inspect",
            ], input: "")
            #expect(outcome.stdout == "/inspect|127.0.0.1:\(port)|https://o.example|Bearer z|7|chat.v1\n")
            #expect(outcome.stderr.contains("subprotocol chat.v1"), "\(outcome.stderr)")
            #expect(outcome.status == 0, "\(outcome.stderr)")
        }
    }

    @Test func aFailedHandshakeExitsWith1() async throws {
        try await withClientTestServer { port in
            let outcome = try await Self.duplex(["connect", "ws://127.0.0.1:\(port)/nowhere"], input: "hi\n")
            #expect(outcome.status == 1)
            #expect(outcome.stderr.contains("404 instead of 101"), "\(outcome.stderr)")
            #expect(outcome.stdout.isEmpty)
        }
        let invalid = try await Self.duplex(["connect", "http://127.0.0.1:1/"], input: "")
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("scheme 'http' is not supported"), "\(invalid.stderr)")
    }

    @Test func anErrorCloseExitsWith2() async throws {
        try await withClientTestServer { port in
            // stdin stays open: the server's close ends the command.
            let outcome = try await Self.duplex(["connect", "ws://127.0.0.1:\(port)/close?code=1011&reason=broken"], input: nil)
            #expect(outcome.status == 2)
            #expect(outcome.stderr.contains("closed: 1011 (internal error) \"broken\""), "\(outcome.stderr)")
        }
    }

    @Test func theServersNormalCloseExitsWith0() async throws {
        try await withClientTestServer { port in
            let outcome = try await Self.duplex(["connect", "ws://127.0.0.1:\(port)/close?code=1000"], input: nil)
            #expect(outcome.status == 0, "\(outcome.stderr)")
        }
    }

    @Test func wssWithACAFileAndInsecure() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await withClientTestServer(tls: certificate.serverTLS()) { port in
            let trusted = try await Self.duplex(["connect", "--ca", certificate.certificatePath, "wss://localhost:\(port)/echo"], input: "tls\n")
            #expect(trusted.stdout == "tls\n")
            #expect(trusted.status == 0, "\(trusted.stderr)")
            let insecure = try await Self.duplex(["connect", "--insecure", "wss://localhost:\(port)/echo"], input: "tls\n")
            #expect(insecure.stdout == "tls\n")
            #expect(insecure.status == 0, "\(insecure.stderr)")
            let refused = try await Self.duplex(["connect", "--no-proxy", "wss://localhost:\(port)/echo"], input: "tls\n")
            #expect(refused.status == 1)
        }
    }

    @Test func badOptionsAreRefused() async throws {
        let outcome = try await Self.duplex(["connect", "--header", "no colon", "ws://127.0.0.1:1/"], input: "")
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains("Name: value"), "\(outcome.stderr)")
    }
}

/// Data handed from one thread to another.
private final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}
