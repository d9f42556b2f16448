import Duplex
import DuplexCore
import Foundation
import Testing

/// permessage-deflate on the server against Python's `websockets` client, which offers it by default.
@Suite struct DeflateInteropTests {
    @Test func pythonWebsocketsClientCompresses() async throws {
        let python = try await ServerInteropTests.interopPython()
        var router = WebSocketRouter()
        router.webSocket("/echo", WebSocketEndpoint(
            configuration: quietConfiguration(),
            extensions: [PerMessageDeflate.ServerNegotiator()],
            callbacks: WebSocketCallbacks(onMessage: { ws, data in ws.send(data) })
        ))
        try await withServer(router) { port, _ in
            let script = repositoryRoot.appendingPathComponent("Tests/Interop/websockets_deflate_check.py").path
            let (status, output) = try await runProcess(python, [script, "ws://127.0.0.1:\(port)/echo"])
            #expect(status == 0, "\(output)")
            #expect(output.contains("ok: negotiated: permessage-deflate"), "\(output)")
            #expect(output.contains("RESULT: OK"), "\(output)")
        }
    }
}
