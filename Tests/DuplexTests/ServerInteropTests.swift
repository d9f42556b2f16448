import Duplex
import DuplexCore
import Foundation
import NIOCore
import Testing

/// The server against Python's `websockets` client (scripts/interop-venv.sh makes its venv).
@Suite struct ServerInteropTests {
    /// Runs a program to its end (at most `timeout`), without blocking a thread of the
    /// cooperative pool; returns its exit status and its output (stdout and stderr).
    static func run(_ executable: String, _ arguments: [String], timeout: TimeAmount = .seconds(120)) async throws -> (status: Int32, output: String) {
        let outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("duplex-proc-\(UUID().uuidString).txt")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputURL) }
        let output = try FileHandle(forWritingTo: outputURL)
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = repositoryRoot
        process.standardOutput = output
        process.standardError = output
        let ended = Mailbox<Int32>()
        process.terminationHandler = { ended.put($0.terminationStatus) }
        try process.run()
        let status: Int32
        do {
            status = try await ended.take(timeout: timeout, "\(executable) to exit")
        } catch {
            process.terminate()
            throw error
        }
        let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        return (status, text)
    }

    /// The venv python with websockets 17.4.
    static func interopPython() async throws -> String {
        let script = repositoryRoot.appendingPathComponent("scripts/interop-venv.sh").path
        let (status, output) = try await run("/bin/bash", [script])
        guard status == 0, let path = output.split(separator: "\n").last.map(String.init), path.hasSuffix("python") else {
            throw TestClientError("interop-venv.sh failed (\(status)): \(output)")
        }
        return path
    }

    @Test func pythonWebsocketsClient() async throws {
        let python = try await Self.interopPython()
        let echoCloses = Mailbox<CloseFrame?>()
        let customCloses = Mailbox<CloseFrame>()
        var router = Router()
        router.webSocket("/echo", asyncEcho(configuration: quietConfiguration(limits: Limits(maxFrameSize: 32 << 20, maxMessageSize: 32 << 20)),
                                            closes: echoCloses))
        router.webSocket("/close-custom", WebSocketEndpoint(configuration: quietConfiguration(), callbacks: WebSocketCallbacks(
            onMessage: { ws, _ in try? ws.close(code: CloseCode(4001), reason: "custom") },
            onClose: { _, frame in customCloses.put(frame) }
        )))
        try await withServer(router) { port, _ in
            let script = repositoryRoot.appendingPathComponent("Tests/Interop/websockets_client_check.py").path
            let (status, output) = try await Self.run(python, [script, "ws://127.0.0.1:\(port)"])
            #expect(status == 0, "\(output)")
            #expect(output.contains("RESULT: OK"), "\(output)")
            #expect(output.contains("ok: client close 1000 echoed"), "\(output)")
            #expect(output.contains("ok: server close code 4001"), "\(output)")
            // The server saw the client's 1000 and the echo of its own 4001.
            #expect(try await echoCloses.take() == CloseFrame(code: .normalClosure, reason: "done"))
            #expect(try await customCloses.take().code == CloseCode(4001))
        }
    }
}
