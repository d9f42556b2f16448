import Duplex
import DuplexCore
import Foundation
import NIOCore
import Testing

/// The server against Python's `websockets` client (scripts/interop-venv.sh makes its venv).
@Suite struct ServerInteropTests {
    /// The venv python with websockets 17.4.
    static func interopPython() async throws -> String {
        let script = repositoryRoot.appendingPathComponent("scripts/interop-venv.sh").path
        let (status, output) = try await runProcess("/bin/bash", [script])
        guard status == 0, let path = output.split(separator: "\n").last.map(String.init), path.hasSuffix("python") else {
            throw TestClientError("interop-venv.sh failed (\(status)): \(output)")
        }
        return path
    }

    @Test func pythonWebsocketsClient() async throws {
        let python = try await Self.interopPython()
        let echoCloses = Mailbox<CloseFrame?>()
        let customCloses = Mailbox<CloseFrame>()
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho(configuration: quietConfiguration(limits: Limits(maxFrameSize: 32 << 20, maxMessageSize: 32 << 20)),
                                            closes: echoCloses))
        router.webSocket("/close-custom", WebSocketEndpoint(configuration: quietConfiguration(), callbacks: WebSocketCallbacks(
            onMessage: { ws, _ in try? ws.close(code: CloseCode(4001), reason: "custom") },
            onClose: { _, frame in customCloses.put(frame) }
        )))
        try await withServer(router) { port, _ in
            let script = repositoryRoot.appendingPathComponent("Tests/Interop/websockets_client_check.py").path
            let (status, output) = try await runProcess(python, [script, "ws://127.0.0.1:\(port)"])
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
