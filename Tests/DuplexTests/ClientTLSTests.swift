import Duplex
import DuplexCore
import NIOCore
import NIOSSL
import Testing

/// wss:// against the Duplex server with a self-signed certificate made by `openssl` at test time.
@Suite struct ClientTLSTests {
    static func echo(_ url: String, tls: WebSocketClientConfiguration.TLS) async throws {
        var configuration = loopbackClientConfiguration()
        configuration.tls = tls
        let ws = try await WebSocketConnection.connect(to: url, configuration: configuration)
        try await ws.send(text: "over TLS")
        var messages = ws.messages.makeAsyncIterator()
        #expect(try await messages.next() == .text("over TLS"))
        let bytes = [UInt8](repeating: 0xA5, count: 100_000)
        try await ws.send(binary: bytes)
        #expect(try await messages.next() == .binary(ByteBuffer(bytes: bytes)))
        #expect(try await ws.close().code == .normalClosure)
    }

    @Test func trustsACAFileWithSNIAndHostnameVerification() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await withClientTestServer(tls: certificate.serverTLS()) { port in
            try await withTimeLimit {
                // By name: SNI is sent and the name is checked against the certificate.
                try await Self.echo("wss://localhost:\(port)/echo", tls: .init(trustRoots: .file(certificate.certificatePath)))
                // By IP literal: no SNI; the certificate's IP address is checked.
                try await Self.echo("wss://127.0.0.1:\(port)/echo", tls: .init(trustRoots: .file(certificate.certificatePath)))
            }
        }
    }

    @Test func insecureOptInAcceptsASelfSignedCertificate() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await withClientTestServer(tls: certificate.serverTLS()) { port in
            try await withTimeLimit {
                try await Self.echo("wss://localhost:\(port)/echo", tls: .insecure)
                // Even under a name the certificate does not carry.
                var tls = WebSocketClientConfiguration.TLS.insecure
                tls.serverName = "elsewhere.example"
                try await Self.echo("wss://127.0.0.1:\(port)/echo", tls: tls)
            }
        }
    }

    @Test func systemTrustRefusesASelfSignedCertificate() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await withClientTestServer(tls: certificate.serverTLS()) { port in
            try await withTimeLimit {
                do {
                    try await Self.echo("wss://localhost:\(port)/echo", tls: .init())
                    Issue.record("a self-signed certificate was trusted by default")
                } catch {
                    #expect(error is NIOSSLError, "\(error)")
                }
            }
        }
    }

    @Test func aWrongNameIsRefused() async throws {
        // A certificate for localhost only (no IP address in it).
        let certificate = try await TestCertificate.make(subjectAltName: "DNS:localhost")
        defer { certificate.remove() }
        try await withClientTestServer(tls: certificate.serverTLS()) { port in
            try await withTimeLimit {
                let trusted = WebSocketClientConfiguration.TLS(trustRoots: .file(certificate.certificatePath))
                try await Self.echo("wss://localhost:\(port)/echo", tls: trusted)
                // By IP address: the certificate does not name 127.0.0.1.
                do {
                    try await Self.echo("wss://127.0.0.1:\(port)/echo", tls: trusted)
                    Issue.record("a certificate without the IP address was accepted")
                } catch {
                    #expect(error is NIOSSLError || error is NIOSSLExtraError, "\(error)")
                }
                // By another name.
                var elsewhere = trusted
                elsewhere.serverName = "elsewhere.example"
                do {
                    try await Self.echo("wss://localhost:\(port)/echo", tls: elsewhere)
                    Issue.record("a certificate for another name was accepted")
                } catch {
                    #expect(error is NIOSSLError || error is NIOSSLExtraError, "\(error)")
                }
                // Without hostname verification, the chain alone is checked.
                var chainOnly = trusted
                chainOnly.certificateVerification = .noHostnameVerification
                try await Self.echo("wss://127.0.0.1:\(port)/echo", tls: chainOnly)
            }
        }
    }

    @Test func trustedCertificatesInMemory() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        let trusted = try NIOSSLCertificate.fromPEMFile(certificate.certificatePath)
        try await withClientTestServer(tls: certificate.serverTLS()) { port in
            try await withTimeLimit {
                try await Self.echo("wss://localhost:\(port)/echo", tls: .init(trustRoots: .certificates(trusted)))
            }
        }
    }

    @Test func theClientOffersHTTP1ByALPN() {
        let configuration = WebSocketClientConfiguration.TLS().makeTLSConfiguration()
        #expect(configuration.applicationProtocols == ["http/1.1"])
        #expect(configuration.trustRoots == .default)
        let insecure = WebSocketClientConfiguration.TLS.insecure.makeTLSConfiguration()
        #expect(insecure.certificateVerification == CertificateVerification.none)
    }

    @Test func plainWebSocketToATLSServerFails() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await withClientTestServer(tls: certificate.serverTLS()) { port in
            try await withTimeLimit {
                _ = await #expect(throws: (any Error).self) {
                    _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: loopbackClientConfiguration())
                }
            }
        }
    }
}
