import Duplex
import DuplexCore
import NIOCore
import NIOPosix
import Testing

/// The client's opening handshake against raw TCP servers that answer a canned response.
///
/// A canned server never answers the client's close frame, so these tests close with a short
/// close timeout (``quick``).
@Suite struct ClientHandshakeTests {
    static let quick = loopbackClientConfiguration(closeTimeout: .milliseconds(100))

    /// Connects to a canned server and returns the error the attempt fails with.
    static func failure(
        configuration: WebSocketClientConfiguration = loopbackClientConfiguration(),
        path: String = "/",
        _ respond: @escaping @Sendable (ReceivedRequest) -> String?
    ) async throws -> any Error {
        let server = try await CannedHTTPServer.start(respond)
        defer { Task { await server.stop() } }
        return try await withTimeLimit(10) {
            do {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(server.port)\(path)", configuration: configuration)
                throw ClientTestFailure("the handshake succeeded (subprotocol \(ws.subprotocol ?? "none"))")
            } catch let error as ClientTestFailure {
                throw error
            } catch {
                return error
            }
        }
    }

    static func handshakeError(_ error: any Error) -> HandshakeError? {
        guard case .handshakeFailed(let reason) = error as? WebSocketError else { return nil }
        return reason
    }

    @Test func theRequestFollowsRFC6455() async throws {
        let server = try await CannedHTTPServer.start { switchingProtocols(for: $0) }
        defer { Task { await server.stop() } }
        var headers = HTTPFields()
        headers.add(name: "Authorization", value: "Bearer abc")
        headers.add(name: "Cookie", value: "a=1")
        headers.add(name: "Upgrade", value: "h2c")  // may not replace the handshake's own field
        let configuration = loopbackClientConfiguration(subprotocols: ["one", "two"], headers: headers, origin: "https://app.example",
                                                        closeTimeout: .milliseconds(100))
        try await withTimeLimit {
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(server.port)/chat/room?id=7&x=%20", configuration: configuration)
            _ = try await ws.close()
        }
        let request = try #require(server.received.first)
        #expect(request.requestLine == "GET /chat/room?id=7&x=%20 HTTP/1.1")
        #expect(request.headers.values("Host") == ["127.0.0.1:\(server.port)"])
        #expect(request.headers.values("Upgrade") == ["websocket"])
        #expect(request.headers.containsToken("Upgrade", in: "Connection"))
        #expect(request.headers.values("Sec-WebSocket-Version") == ["13"])
        #expect(request.headers.values("Sec-WebSocket-Protocol") == ["one, two"])
        #expect(request.headers.values("Origin") == ["https://app.example"])
        #expect(request.headers.values("Authorization") == ["Bearer abc"])
        #expect(request.headers.values("Cookie") == ["a=1"])
        // permessage-deflate is offered by default.
        #expect(request.headers.values("Sec-WebSocket-Extensions") == ["permessage-deflate; client_max_window_bits"])
        let key = try #require(request.headers.first("Sec-WebSocket-Key"))
        #expect(AcceptKey.isValidKey(key))
    }

    @Test func everyHandshakeHasAFreshKey() async throws {
        let server = try await CannedHTTPServer.start { switchingProtocols(for: $0) }
        defer { Task { await server.stop() } }
        try await withTimeLimit {
            for _ in 0..<3 {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(server.port)/", configuration: Self.quick)
                _ = try await ws.close()
            }
        }
        let keys = server.received.compactMap { $0.headers.first("Sec-WebSocket-Key") }
        #expect(keys.count == 3)
        #expect(Set(keys).count == 3)
    }

    @Test func credentialsInTheURLBecomeBasicAuthorization() async throws {
        let server = try await CannedHTTPServer.start { switchingProtocols(for: $0) }
        defer { Task { await server.stop() } }
        try await withTimeLimit {
            let ws = try await WebSocketConnection.connect(to: "ws://alice:s%3Acret@127.0.0.1:\(server.port)/", configuration: Self.quick)
            _ = try await ws.close()
        }
        // base64("alice:s:cret")
        #expect(server.received.first?.headers.values("Authorization") == ["Basic YWxpY2U6czpjcmV0"])
    }

    @Test func wrongAccept() async throws {
        let error = try await Self.failure { switchingProtocols(for: $0, accept: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=") }
        guard case .invalidAccept(let expected, let received) = Self.handshakeError(error) else {
            Issue.record("expected invalidAccept, got \(error)")
            return
        }
        #expect(received == "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        #expect(expected.count == 28)
        #expect("\(error)".contains("Sec-WebSocket-Accept"))
    }

    @Test func missingAccept() async throws {
        let error = try await Self.failure { switchingProtocols(for: $0, omitting: ["Sec-WebSocket-Accept"]) }
        guard case .invalidAccept(_, nil) = Self.handshakeError(error) else {
            Issue.record("expected invalidAccept with none received, got \(error)")
            return
        }
    }

    @Test func okInsteadOfSwitchingProtocols() async throws {
        let error = try await Self.failure { _ in
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Reason: no websockets here\r\nContent-Length: 2\r\n\r\nhi"
        }
        guard case .unexpectedStatus(let status, let headers) = Self.handshakeError(error) else {
            Issue.record("expected unexpectedStatus, got \(error)")
            return
        }
        #expect(status == 200)
        #expect(headers.first("X-Reason") == "no websockets here")
        #expect("\(error)".contains("200 instead of 101"))
    }

    @Test func unauthorizedSurfacesStatusAndHeaders() async throws {
        let error = try await Self.failure { _ in
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"chat\"\r\nContent-Length: 0\r\n\r\n"
        }
        guard case .unexpectedStatus(401, let headers) = Self.handshakeError(error) else {
            Issue.record("expected unexpectedStatus(401), got \(error)")
            return
        }
        #expect(headers.first("WWW-Authenticate") == "Bearer realm=\"chat\"")
    }

    @Test func switchingProtocolsWithoutUpgrade() async throws {
        let error = try await Self.failure { switchingProtocols(for: $0, omitting: ["Upgrade"]) }
        #expect(Self.handshakeError(error) == .responseMissingUpgrade, "\(error)")
    }

    @Test func switchingProtocolsWithoutConnectionUpgrade() async throws {
        let error = try await Self.failure { switchingProtocols(for: $0, omitting: ["Connection"]) }
        #expect(Self.handshakeError(error) == .responseMissingConnectionUpgrade, "\(error)")
    }

    @Test func unofferedSubprotocol() async throws {
        let error = try await Self.failure(configuration: loopbackClientConfiguration(subprotocols: ["chat"])) {
            switchingProtocols(for: $0, extraHeaders: ["Sec-WebSocket-Protocol: superchat"])
        }
        #expect(Self.handshakeError(error) == .unofferedSubprotocol("superchat"), "\(error)")
    }

    @Test func subprotocolWhenNoneWasOffered() async throws {
        let error = try await Self.failure { switchingProtocols(for: $0, extraHeaders: ["Sec-WebSocket-Protocol: chat"]) }
        #expect(Self.handshakeError(error) == .unofferedSubprotocol("chat"), "\(error)")
    }

    @Test func unofferedExtension() async throws {
        var offeringNone = loopbackClientConfiguration()
        offeringNone.extensions = []
        let error = try await Self.failure(configuration: offeringNone) {
            switchingProtocols(for: $0, extraHeaders: ["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10"])
        }
        #expect(Self.handshakeError(error) == .unofferedExtension("permessage-deflate"), "\(error)")
    }

    @Test func offeredSubprotocolIsAgreed() async throws {
        let server = try await CannedHTTPServer.start { switchingProtocols(for: $0, extraHeaders: ["Sec-WebSocket-Protocol: two"]) }
        defer { Task { await server.stop() } }
        try await withTimeLimit {
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(server.port)/",
                                                 configuration: loopbackClientConfiguration(subprotocols: ["one", "two"],
                                                                                            closeTimeout: .milliseconds(100)))
            #expect(ws.subprotocol == "two")
            #expect(ws.request == nil)
            _ = try await ws.close()
        }
    }

    @Test func framesRightAfterThe101AreDelivered() async throws {
        // The server's first frame arrives in the same packet as the 101 answer: the HTTP decoder
        // must hand it on to the WebSocket handler.
        let frames: [UInt8] = [0x81, 0x05] + Array("hello".utf8) + [0x88, 0x02, 0x03, 0xE8]
        let server = try await CannedHTTPServer.start(extraBytes: frames) { switchingProtocols(for: $0) }
        defer { Task { await server.stop() } }
        var settings = loopbackClientConfiguration()
        settings.webSocket.closeTimeout = .milliseconds(200)
        let configuration = settings
        try await withTimeLimit {
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(server.port)/", configuration: configuration)
            var received: [WebSocketMessage] = []
            for try await message in ws.messages { received.append(message) }
            #expect(received == [.text("hello")])
            // The client echoed the close and waits for the server's TCP close; the canned server
            // never closes, so the close timeout ends it. The code is the server's.
            let close = await ws.waitForClose()
            #expect(close.code == .normalClosure)
        }
    }

    @Test func handshakeTimeout() async throws {
        let started = ContinuousClock.now
        let error = try await Self.failure(configuration: loopbackClientConfiguration(handshakeTimeout: .milliseconds(300))) { _ in nil }
        #expect(error as? WebSocketError == .handshakeTimeout, "\(error)")
        let elapsed = ContinuousClock.now - started
        // Not before the timeout; the upper bound only catches a timeout that never fires (the event
        // loops are shared with every other test, so a busy run can delay it).
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(9), "took \(elapsed)")
    }

    @Test func partialResponseTimesOut() async throws {
        let error = try await Self.failure(configuration: loopbackClientConfiguration(handshakeTimeout: .milliseconds(300))) { _ in
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        }
        #expect(error as? WebSocketError == .handshakeTimeout, "\(error)")
    }

    @Test func serverClosesDuringHandshake() async throws {
        // A server that accepts and closes at once.
        let closer = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.close() }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { closer.close(promise: nil) }
        let port = try #require(closer.localAddress?.port)
        try await withTimeLimit {
            do {
                _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/", configuration: loopbackClientConfiguration())
                Issue.record("the handshake succeeded")
            } catch {
                // Either the close is seen as such, or as a reset while sending the request.
                let closed = error as? WebSocketError == .connectionClosedDuringHandshake
                let ioError = error is IOError || error is ChannelError
                #expect(closed || ioError, "\(error)")
            }
        }
    }

    @Test func connectionRefused() async throws {
        // A port that was just free: bind, note it, close.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(probe.localAddress?.port)
        try await probe.close()
        try await withTimeLimit {
            _ = await #expect(throws: (any Error).self) {
                _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/", configuration: loopbackClientConfiguration())
            }
        }
    }

    @Test func cancellationEndsTheAttempt() async throws {
        let server = try await CannedHTTPServer.start { _ in nil }
        defer { Task { await server.stop() } }
        let port = server.port
        let task = Task {
            try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/", configuration: loopbackClientConfiguration(handshakeTimeout: .seconds(30)))
        }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        let result = try await withTimeLimit(5) { await task.result }
        switch result {
        case .success: Issue.record("the handshake succeeded")
        case .failure(let error): #expect(error is CancellationError, "\(error)")
        }
    }
}
