import DuplexVapor
import NIOCore
import Testing
import Vapor

/// Duplex endpoints on a Vapor app's routes and port, through Duplex's client.
@Suite struct DuplexVaporTests {
    @Test func echoesTextAndBinaryBesideAPlainRoute() async throws {
        try await TestApp.with { app in
            let ws = try await app.connect("/echo")
            try await ws.send(text: "hello, wörld ✓")
            #expect(try await next(ws) == .text("hello, wörld ✓"))
            let bytes = ByteBuffer(bytes: (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try await ws.send(binary: bytes)
            #expect(try await next(ws) == .binary(bytes))
            #expect(app.upgrader.connectionCount == 1)

            // The app's plain route answers on the same port, behind the same middleware, with the WebSocket open.
            let hello = try await rawHTTPExchange(port: app.port, "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User: ada\r\n\r\n")
            #expect(hello.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(hello)")
            #expect(hello.hasSuffix("\r\n\r\nhello ada\n"), "\(hello)")
            #expect(try await ws.close().code == .normalClosure)
        }
    }

    @Test func theSameEndpointValueRunsUnderAWebSocketServer() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", TestApp.echo)
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0, webSocket: TestApp.quiet), router: router,
                                     logger: TestApp.logger())
        let address = try await server.start()
        try await TestApp.with { app in
            for url in ["ws://127.0.0.1:\(try #require(address.port))/echo", "ws://127.0.0.1:\(app.port)/echo"] {
                let ws = try await WebSocketConnection.connect(
                    to: url, configuration: .init(webSocket: TestApp.quiet, proxy: .none), logger: TestApp.logger())
                try await ws.send(text: "same endpoint")
                #expect(try await next(ws) == .text("same endpoint"), "\(url)")
                #expect(try await ws.close().code == .normalClosure)
            }
        }
        await server.shutdown()
    }

    @Test func bytesSentRightAfterTheRequestReachTheWebSocket() async throws {
        try await TestApp.with { app in
            // The request and a first frame (masked text "hi", mask 1 2 3 4) in one write: the frame
            // is read with the request, past it, and must reach the echo.
            let frame: [UInt8] = [0x81, 0x82, 1, 2, 3, 4, UInt8(ascii: "h") ^ 1, UInt8(ascii: "i") ^ 2]
            let request = Array("""
                GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n
                """.utf8) + frame
            let echo: [UInt8] = [0x81, 0x02, UInt8(ascii: "h"), UInt8(ascii: "i")]
            let answer = try await rawExchange(port: app.port, request) { $0.count >= 4 && Array($0.suffix(4)) == echo }
            let text = String(decoding: answer, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(text)")
            #expect(text.lowercased().contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"), "\(text)")
            #expect(Array(answer.suffix(4)) == echo, "\(text)")
        }
    }

    @Test func negotiatesASubprotocolAndSeesTheVaporRequest() async throws {
        try await TestApp.with { app in
            let ws = try await app.connect("/chat/lobby", subprotocols: ["chat.v1", "chat.v2"], user: "ada")
            #expect(ws.subprotocol == "chat.v1")
            #expect(try await next(ws) == .text("ada in lobby (/chat/:room) over chat.v1"))
            _ = await ws.waitForClose()
        }
    }

    @Test func refusesWithDuplexsStatusesAndTheMiddlewares() async throws {
        try await TestApp.with { app in
            // The Vapor hook refuses: the middleware found no user.
            do {
                _ = try await app.connect("/chat/lobby")
                Issue.record("the upgrade without a user was accepted")
            } catch WebSocketError.handshakeFailed(.unexpectedStatus(let status, _)) {
                #expect(status == .forbidden)
            }
            // A version other than 13: 426 with the version Duplex speaks.
            let version12 = try await rawHTTPExchange(port: app.port, """
                GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n
                """)
            #expect(version12.hasPrefix("HTTP/1.1 426 Upgrade Required\r\n"), "\(version12)")
            #expect(version12.lowercased().contains("\r\nsec-websocket-version: 13\r\n"), "\(version12)")
            // A key that is not 16 bytes in base64: 400.
            let badKey = try await rawHTTPExchange(port: app.port, """
                GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n
                """)
            #expect(badKey.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(badKey)")
            // The middleware answers before the route: its 401 reaches the client.
            let blocked = try await rawHTTPExchange(port: app.port, """
                GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Blocked: 1\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n
                """)
            #expect(blocked.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"), "\(blocked)")
            #expect(blocked.lowercased().contains("\r\nwww-authenticate: bearer\r\n"), "\(blocked)")
            // Not an upgrade at all: 426, as at a WebSocketServer's endpoint.
            let plain = try await rawHTTPExchange(port: app.port, "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(plain.hasPrefix("HTTP/1.1 426 Upgrade Required\r\n"), "\(plain)")
            #expect(app.upgrader.connectionCount == 0)
        }
    }

    @Test func publishesToSubscribersOfAVaporRoute() async throws {
        try await TestApp.with { app in
            let ws = try await app.connect("/topics/news")
            #expect(try await next(ws) == .text("subscribed"))
            #expect(app.upgrader.subscriberCount(of: "news") == 1)
            #expect(app.upgrader.publish(.text("extra, extra"), to: "news") == 1)
            #expect(try await next(ws) == .text("extra, extra"))
            #expect(app.upgrader.topics == ["news": 1])
            #expect(try await ws.close().code == .normalClosure)
        }
    }

    @Test func theUpgradersLifecycleShutdownClosesItsWebSocketsWith1001() async throws {
        let app = try await TestApp.start()
        let ws = try await app.connect("/echo")
        try await ws.send(text: "before")
        #expect(try await next(ws) == .text("before"))
        // What the app's `asyncShutdown()` calls on the upgrader (`app.lifecycle.use(upgrader)`),
        // here with the server still running (Vapor stops the server first, which quiesces the
        // WebSockets itself; see the next test): 1001 to the WebSocket.
        await app.upgrader.shutdownAsync(app.app)
        #expect(await ws.waitForClose().code == .goingAway)
        #expect(app.upgrader.connectionCount == 0)
        await app.stop()
    }

    @Test func theServersShutdownClosesItsWebSocketsWith1001() async throws {
        let app = try await TestApp.start()
        let ws = try await app.connect("/echo")
        try await ws.send(text: "before")
        #expect(try await next(ws) == .text("before"))
        // Vapor's server quiesces its connections, the WebSocket among them: 1001.
        await app.app.server.shutdown()
        #expect(await ws.waitForClose().code == .goingAway)
        try await app.app.asyncShutdown()
    }
}
