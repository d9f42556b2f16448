import Duplex
import DuplexCore
import Foundation
import NIOCore
import NIOSSL
import Testing

/// wss:// with a certificate made at test time by the `openssl` command.
@Suite struct ServerTLSTests {
    /// A self-signed certificate for localhost and 127.0.0.1 in a fresh temporary directory.
    static func makeCertificate() async throws -> (directory: URL, certificate: String, key: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("duplex-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificate = directory.appendingPathComponent("c.pem").path
        let key = directory.appendingPathComponent("k.pem").path
        let (status, output) = try await runProcess("/usr/bin/env", [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
            "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        guard status == 0 else { throw TestClientError("openssl failed (\(status)): \(output)") }
        return (directory, certificate, key)
    }

    @Test func echoOverTLS() async throws {
        let (directory, certificatePath, keyPath) = try await Self.makeCertificate()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tls = try TLSConfiguration.duplexServer(certificatePath: certificatePath, privateKeyPath: keyPath)
        #expect(tls.applicationProtocols == ["h2", "http/1.1"])

        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificatePath))
        let clientContext = try NIOSSLContext(configuration: clientTLS)

        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho(configuration: quietConfiguration()))
        try await withServer(router, tls: tls) { port, _ in
            let client = try await TestClient.webSocket(port: port, tls: clientContext)
            try await client.sendText("secret hello")
            #expect(try await client.nextMessage() == .text("secret hello"))
            let bytes = patternBytes(200_000, seed: 11)
            try await client.sendBinary(bytes)
            #expect(try await client.nextMessage() == .binary(bytes))
            try await client.sendPing([1, 2, 3])
            #expect(try await client.next() == .pong([1, 2, 3]))
            try await client.sendClose(code: 1000)
            #expect(try await client.nextClose().code == 1000)
            try await client.waitForTCPClose()

            // Plain HTTP routes answer over TLS too.
            let http = try await TestClient.raw(port: port, tls: clientContext)
            try await http.send(raw: httpRequest("GET", "/healthz"))
            let answer = try await http.readResponse()
            #expect(answer.status == 200)
            #expect(answer.body == "ok\n")
            await http.close()

            // A client that does not trust the certificate does not get through.
            let untrusting = try NIOSSLContext(configuration: .makeClientConfiguration())
            await #expect(throws: (any Error).self) {
                _ = try await TestClient.webSocket(port: port, tls: untrusting)
            }
        }
    }
}
