import Duplex
import DuplexCore
import NIOCore
import Testing

/// ws:// and wss:// through an HTTP CONNECT proxy made in the test.
@Suite struct ClientProxyTests {
    static func configuration(proxy: HTTPProxy) -> WebSocketClientConfiguration {
        var configuration = loopbackClientConfiguration()
        configuration.proxy = .http(proxy)
        return configuration
    }

    @Test func echoThroughTheProxy() async throws {
        let proxy = try await TestConnectProxy.start()
        defer { Task { await proxy.stop() } }
        try await withClientTestServer { port in
            try await withTimeLimit {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/inspect?via=proxy",
                                                     configuration: Self.configuration(proxy: HTTPProxy(host: "127.0.0.1", port: proxy.port)))
                var messages = ws.messages.makeAsyncIterator()
                // The server sees the request as if it came directly (the Host is the server's).
                #expect(try await messages.next() == .text("/inspect?via=proxy|127.0.0.1:\(port)||||"))
                try await ws.send(text: "through the tunnel")
                #expect(try await messages.next() == .text("through the tunnel"))
                #expect(try await ws.close().code == .normalClosure)
            }
            let request = try #require(proxy.requests.first)
            #expect(request.requestLine == "CONNECT 127.0.0.1:\(port) HTTP/1.1")
            #expect(request.headers.first("Host") == "127.0.0.1:\(port)")
            #expect(request.headers.first("Proxy-Authorization") == nil)
        }
    }

    /// Runs `body` with the port of a TLS test server whose certificate has `subjectAltName`
    /// (none when nil), a client configuration through a CONNECT proxy that trusts it, and the
    /// proxy (which opens every tunnel to `connectTo` when given).
    static func withTLSBehindProxy(
        subjectAltName: String? = "DNS:localhost,IP:127.0.0.1", connectTo: String? = nil,
        _ body: @escaping @Sendable (_ port: Int, _ configuration: WebSocketClientConfiguration, _ proxy: TestConnectProxy) async throws -> Void
    ) async throws {
        let certificate = try await TestCertificate.make(subjectAltName: subjectAltName)
        defer { certificate.remove() }
        let proxy = try await TestConnectProxy.start(connectTo: connectTo)
        defer { Task { await proxy.stop() } }
        try await withClientTestServer(tls: certificate.serverTLS()) { port in
            var configuration = Self.configuration(proxy: HTTPProxy(host: "127.0.0.1", port: proxy.port))
            configuration.tls.trustRoots = .file(certificate.certificatePath)
            try await withTimeLimit { [configuration] in try await body(port, configuration, proxy) }
        }
    }

    @Test func wssThroughTheProxy() async throws {
        try await Self.withTLSBehindProxy { port, configuration, proxy in
            // TLS runs end to end inside the tunnel, with SNI and the name check for localhost.
            let ws = try await WebSocketConnection.connect(to: "wss://localhost:\(port)/echo", configuration: configuration)
            try await ws.send(text: "secret")
            var messages = ws.messages.makeAsyncIterator()
            #expect(try await messages.next() == .text("secret"))
            #expect(try await ws.close().code == .normalClosure)
            #expect(proxy.requests.map(\.requestLine) == ["CONNECT localhost:\(port) HTTP/1.1"])
        }
    }

    /// TLS through a tunnel: the certificate must name the target, not merely the address the
    /// socket is connected to (the proxy's).
    @Test func wssThroughTheProxyChecksTheTargetsName() async throws {
        // A wildcard certificate that also names 127.0.0.1, the proxy's address; the proxy opens
        // every tunnel to 127.0.0.1, so the names need not resolve.
        try await Self.withTLSBehindProxy(subjectAltName: "DNS:*.example.test,IP:127.0.0.1", connectTo: "127.0.0.1") { port, configuration, proxy in
            for host in ["api.example.test", "API.Example.Test", "127.0.0.1"] {
                let ws = try await WebSocketConnection.connect(to: "wss://\(host):\(port)/echo", configuration: configuration)
                #expect(try await ws.close().code == .normalClosure, "\(host)")
            }
            for host in ["example.test", "a.b.example.test", "localhost", "other.test"] {
                do {
                    _ = try await WebSocketConnection.connect(to: "wss://\(host):\(port)/echo", configuration: configuration)
                    Issue.record("a certificate for *.example.test was accepted for \(host)")
                } catch let error as TLSIdentityError {
                    #expect(error.expected == host.lowercased())
                    #expect(error.names == ["*.example.test", "127.0.0.1"])
                }
            }
            // The requests reached the server only for the accepted names.
            #expect(proxy.requests.count == 7)
        }
    }

    /// Through a tunnel a certificate without subject alternative names is refused, though its
    /// common name is the host (RFC 6125).
    @Test func wssThroughTheProxyRefusesACommonNameOnly() async throws {
        try await Self.withTLSBehindProxy(subjectAltName: nil) { port, configuration, _ in
            do {
                _ = try await WebSocketConnection.connect(to: "wss://localhost:\(port)/echo", configuration: configuration)
                Issue.record("a certificate with CN=localhost and no alternative names was accepted")
            } catch let error as TLSIdentityError {
                #expect(error.expected == "localhost")
                #expect(error.names == [])
            }
        }
    }

    @Test func proxyCredentialsAreSent() async throws {
        let proxy = try await TestConnectProxy.start()
        defer { Task { await proxy.stop() } }
        try await withClientTestServer { port in
            try await withTimeLimit {
                let settings = try HTTPProxy(url: "http://user:pa%20ss@127.0.0.1:\(proxy.port)")
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: Self.configuration(proxy: settings))
                _ = try await ws.close()
            }
        }
        #expect(proxy.requests.first?.headers.first("Proxy-Authorization") == "Basic dXNlcjpwYSBzcw==")
    }

    @Test func aRefusalIsAProxyError() async throws {
        let proxy = try await TestConnectProxy.start(refuseWith: "407 Proxy Authentication Required")
        defer { Task { await proxy.stop() } }
        try await withTimeLimit {
            do {
                _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:9/echo",
                                                configuration: Self.configuration(proxy: HTTPProxy(host: "127.0.0.1", port: proxy.port)))
                Issue.record("connected through a refusing proxy")
            } catch WebSocketError.proxyFailed(let reason) {
                #expect(reason.contains("407 Proxy Authentication Required"), "\(reason)")
                #expect(reason.contains("CONNECT 127.0.0.1:9"), "\(reason)")
            }
        }
    }

    @Test func anUnreachableTargetIsAProxyError() async throws {
        let proxy = try await TestConnectProxy.start()
        defer { Task { await proxy.stop() } }
        try await withTimeLimit {
            do {
                // Port 9 (discard) is closed on loopback: the proxy answers 502.
                _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:9/echo",
                                                configuration: Self.configuration(proxy: HTTPProxy(host: "127.0.0.1", port: proxy.port)))
                Issue.record("connected to a closed port through the proxy")
            } catch WebSocketError.proxyFailed(let reason) {
                #expect(reason.contains("502"), "\(reason)")
            }
        }
    }

    @Test func aProxyThatHangsUpIsAProxyError() async throws {
        // A "proxy" that reads the CONNECT request and closes.
        let server = try await CannedHTTPServer.start(closeAfterAnswer: true) { _ in "" }
        defer { Task { await server.stop() } }
        try await withTimeLimit {
            do {
                _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:9/echo",
                                                configuration: Self.configuration(proxy: HTTPProxy(host: "127.0.0.1", port: server.port)))
                Issue.record("connected through a proxy that hung up")
            } catch WebSocketError.proxyFailed(let reason) {
                #expect(reason.contains("closed the connection"), "\(reason)")
            }
        }
    }

    @Test func aMalformedAnswerIsAProxyError() async throws {
        // Not HTTP at all (some other service on the proxy's port).
        let server = try await CannedHTTPServer.start { _ in "SSH-2.0-OpenSSH_9.6\r\n\r\n" }
        defer { Task { await server.stop() } }
        try await withTimeLimit {
            do {
                _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:9/echo",
                                                configuration: Self.configuration(proxy: HTTPProxy(host: "127.0.0.1", port: server.port)))
                Issue.record("connected through a proxy that does not speak HTTP")
            } catch WebSocketError.proxyFailed(let reason) {
                #expect(reason.contains("malformed answer to CONNECT 127.0.0.1:9"), "\(reason)")
            }
        }
    }

    @Test func aProxyThatIsSilentTimesOut() async throws {
        let server = try await CannedHTTPServer.start { _ in nil }
        defer { Task { await server.stop() } }
        var configuration = Self.configuration(proxy: HTTPProxy(host: "127.0.0.1", port: server.port))
        configuration.handshakeTimeout = .seconds(1)
        let attempt = Task { [configuration] in
            try await WebSocketConnection.connect(to: "ws://127.0.0.1:9/echo", configuration: configuration)
        }
        #expect(try await server.firstRequest().requestLine == "CONNECT 127.0.0.1:9 HTTP/1.1")
        let result = try await withTimeLimit(10) { await attempt.result }
        switch result {
        case .success: Issue.record("connected through a silent proxy")
        case .failure(let error): #expect(error as? WebSocketError == .handshakeTimeout, "\(error)")
        }
    }

    @Test func ipv6TargetsAreBracketed() async throws {
        let server = try await CannedHTTPServer.start { _ in nil }
        defer { Task { await server.stop() } }
        let configuration = Self.configuration(proxy: HTTPProxy(host: "127.0.0.1", port: server.port))
        let attempt = Task { try await WebSocketConnection.connect(to: "ws://[::1]:8080/x", configuration: configuration) }
        let request = try await server.firstRequest()
        attempt.cancel()
        _ = await attempt.result
        #expect(request.requestLine == "CONNECT [::1]:8080 HTTP/1.1")
        #expect(request.headers.first("Host") == "[::1]:8080")
    }
}
