import Duplex
import DuplexCore
import NIOCore
import Testing

/// The opening handshake over real TCP: the answer to every bad request, plain HTTP on the
/// same port, subprotocols, origins and the upgrade hook.
@Suite struct ServerHandshakeTests {
    static func router() -> WebSocketRouter {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho())
        router.get("/hello") { request in
            .text("hello \(request.query ?? "")\n")
        }
        return router
    }

    /// Sends `request` on a fresh connection and returns the answer; the server must then close.
    static func refusal(_ request: String, port: Int) async throws -> HTTPAnswer {
        let client = try await TestClient.raw(port: port)
        try await client.send(raw: request)
        let answer = try await client.readResponse()
        #expect(answer.headers.first("Connection")?.lowercased() == "close")
        try await client.waitForTCPClose(timeout: .seconds(5))
        return answer
    }

    @Test func badUpgradeRequestsGetTheirStatusAndTheConnectionCloses() async throws {
        try await withServer(Self.router()) { port, _ in
            // Not GET.
            let post = try await Self.refusal(httpRequest("POST", "/echo", headers: upgradeHeaders()), port: port)
            #expect(post.status == 405)
            #expect(post.headers.first("Allow") == "GET")

            // Missing Connection: Upgrade.
            let noConnection = try await Self.refusal(
                httpRequest("GET", "/echo", headers: upgradeHeaders(omitting: ["Connection"])), port: port)
            #expect(noConnection.status == 400)
            #expect(noConnection.body.contains("Connection"))

            // Bad keys: not base64 of 16 bytes, missing, repeated.
            for headers in [
                upgradeHeaders(key: "not-a-key"),
                upgradeHeaders(key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"),  // 28 chars: 20 bytes
                upgradeHeaders(omitting: ["Sec-WebSocket-Key"]),
                upgradeHeaders(adding: [("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw==")]),
            ] {
                let answer = try await Self.refusal(httpRequest("GET", "/echo", headers: headers), port: port)
                #expect(answer.status == 400)
                #expect(answer.body.contains("Sec-WebSocket-Key"))
            }

            // Version 8 -> 426 naming the version this server speaks.
            let v8 = try await Self.refusal(httpRequest("GET", "/echo", headers: upgradeHeaders(version: "8")), port: port)
            #expect(v8.status == 426)
            #expect(v8.headers.values("Sec-WebSocket-Version") == ["13"])

            // Missing version -> 400, also naming the version.
            let noVersion = try await Self.refusal(
                httpRequest("GET", "/echo", headers: upgradeHeaders(omitting: ["Sec-WebSocket-Version"])), port: port)
            #expect(noVersion.status == 400)
            #expect(noVersion.headers.values("Sec-WebSocket-Version") == ["13"])

            // HTTP/1.0.
            let http10 = try await Self.refusal(
                httpRequest("GET", "/echo", headers: upgradeHeaders(), version: "HTTP/1.0"), port: port)
            #expect(http10.status == 400)

            // Unknown path.
            let unknown = try await Self.refusal(httpRequest("GET", "/nowhere", headers: upgradeHeaders()), port: port)
            #expect(unknown.status == 404)
        }
    }

    @Test func missingUpgradeIsPlainHTTPAndAWebSocketPathAnswers426() async throws {
        try await withServer(Self.router()) { port, _ in
            let client = try await TestClient.raw(port: port)
            // No Upgrade header: a plain GET of a WebSocket path. 426 names the upgrade; the
            // connection stays open (it is an ordinary HTTP answer) and serves the next request.
            try await client.send(raw: httpRequest("GET", "/echo", headers: upgradeHeaders(omitting: ["Upgrade"])))
            let answer = try await client.readResponse()
            #expect(answer.status == 426)
            #expect(answer.headers.first("Upgrade") == "websocket")
            #expect(answer.headers.first("Sec-WebSocket-Version") == "13")
            #expect(answer.headers.first("Connection") == "keep-alive")
            try await client.send(raw: httpRequest("GET", "/healthz"))
            #expect(try await client.readResponse().status == 200)
            await client.close()

            // An upgrade to another protocol is not a WebSocket upgrade either: 426, and as the
            // request asked to switch protocols, the connection closes after the answer.
            let h2c = try await Self.refusal(
                httpRequest("GET", "/echo", headers: [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings")]), port: port)
            #expect(h2c.status == 426)
            let route = try await Self.refusal(
                httpRequest("GET", "/healthz", headers: [("Upgrade", "h2c"), ("Connection", "Upgrade")]), port: port)
            #expect(route.status == 200)
            #expect(route.body == "ok\n")
        }
    }

    @Test func oversizedHeadersAnswer431() async throws {
        try await withServer(Self.router(), maxHandshakeHeaderBytes: 4096) { port, _ in
            // Over the server's handshake limit (checked on upgrade requests).
            let big = upgradeHeaders(adding: [("X-Filler", String(repeating: "a", count: 5000))])
            let answer = try await Self.refusal(httpRequest("GET", "/echo", headers: big), port: port)
            #expect(answer.status == 431)

            // Over the HTTP decoder's own bound (80 KiB), on any request.
            let huge = [("X-Filler", String(repeating: "b", count: 100_000))]
            let decoder = try await Self.refusal(httpRequest("GET", "/healthz", headers: huge), port: port)
            #expect(decoder.status == 431)
        }
    }

    @Test func malformedHTTPAnswers400() async throws {
        try await withServer(Self.router()) { port, _ in
            let answer = try await Self.refusal("NOT HTTP AT ALL\r\n\r\n", port: port)
            #expect(answer.status == 400)
        }
    }

    @Test func plainHTTPRoutesAndKeepAlive() async throws {
        try await withServer(Self.router()) { port, _ in
            let client = try await TestClient.raw(port: port)
            try await client.send(raw: httpRequest("GET", "/healthz"))
            let health = try await client.readResponse()
            #expect(health.status == 200)
            #expect(health.body == "ok\n")
            #expect(health.headers.first("Connection") == "keep-alive")

            // The second request on the same connection: a custom route with a query.
            try await client.send(raw: httpRequest("GET", "/hello?name=duplex"))
            let hello = try await client.readResponse()
            #expect(hello.status == 200)
            #expect(hello.body == "hello name=duplex\n")
            #expect(hello.headers.first("Content-Type") == "text/plain; charset=utf-8")

            // Two pipelined requests in one write.
            try await client.send(raw: httpRequest("GET", "/healthz") + httpRequest("HEAD", "/hello"))
            #expect(try await client.readResponse().body == "ok\n")
            let head = try await client.wait("the HEAD response") { h in TestClientHandler.parseHead(&h.raw) }
            #expect(head.status == 200)
            #expect(head.headers.first("Content-Length") == "\("hello \n".utf8.count)")

            // A request with a body: the body is skipped, the connection kept.
            try await client.send(raw: "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            #expect(try await client.readResponse().status == 405)

            // Unknown path and wrong method keep the connection too.
            try await client.send(raw: httpRequest("GET", "/missing"))
            #expect(try await client.readResponse().status == 404)
            try await client.send(raw: httpRequest("DELETE", "/healthz"))
            let delete = try await client.readResponse()
            #expect(delete.status == 405)
            #expect(delete.headers.first("Allow") == "GET, HEAD")
            #expect(try await client.isClosed == false)

            // Connection: close is honoured.
            try await client.send(raw: httpRequest("GET", "/healthz", headers: [("Connection", "close")]))
            #expect(try await client.readResponse().status == 200)
            try await client.waitForTCPClose()
        }
    }

    @Test func subprotocolIsTheClientsFirstThatTheEndpointSpeaks() async throws {
        let chosen = Mailbox<String?>()
        var router = WebSocketRouter()
        router.webSocket("/chat", WebSocketEndpoint(subprotocols: ["chat.v1", "chat.v2"]) { ws in
            chosen.put(ws.subprotocol)
            try await ws.close()
        })
        try await withServer(router) { port, _ in
            for (offered, expected) in [
                (["chat.v2", "chat.v1"], "chat.v2"),
                (["x", "chat.v1", "chat.v2"], "chat.v1"),
                (["x", "y"], nil),
                ([], nil),
            ] as [([String], String?)] {
                let client = try await TestClient.webSocket(port: port, path: "/chat", subprotocols: offered)
                let answer = try #require(client.handshake)
                if let expected {
                    #expect(answer.headers.values("Sec-WebSocket-Protocol") == [expected])
                } else {
                    #expect(answer.headers.values("Sec-WebSocket-Protocol").isEmpty)
                }
                #expect(try await chosen.take() == expected)
                #expect(try await client.nextClose().code == 1000)
                try await client.waitForTCPClose()
            }
        }
    }

    /// The status answering an upgrade to `path` with `origin`.
    static func originStatus(_ port: Int, _ path: String, origin: String?) async throws -> Int {
        var headers = upgradeHeaders()
        if let origin { headers.append(("Origin", origin)) }
        let client = try await TestClient.raw(port: port)
        try await client.send(raw: httpRequest("GET", path, headers: headers))
        let answer = try await client.wait("the answer") { h in TestClientHandler.parseHead(&h.raw) }
        if answer.status != 101 { try await client.waitForTCPClose() }
        await client.close()
        return answer.status
    }

    @Test func originAllowlist() async throws {
        var router = WebSocketRouter()
        let patterns: [OriginPattern] = [.exact("https://example.com"), .wildcard("https://*.example.org")]
        router.webSocket("/open", WebSocketEndpoint(origins: .allow(patterns), handler: { _ in }))
        router.webSocket("/strict", WebSocketEndpoint(origins: .allow(patterns, requireOrigin: true), handler: { _ in }))
        try await withServer(router) { port, _ async throws in
            #expect(try await Self.originStatus(port, "/open", origin: "https://example.com") == 101)
            #expect(try await Self.originStatus(port, "/open", origin: "HTTPS://EXAMPLE.COM") == 101)
            #expect(try await Self.originStatus(port, "/open", origin: "https://app.example.org") == 101)
            #expect(try await Self.originStatus(port, "/open", origin: "https://a.b.example.org") == 101)
            #expect(try await Self.originStatus(port, "/open", origin: "https://example.org") == 403)
            #expect(try await Self.originStatus(port, "/open", origin: "https://example.com.evil.net") == 403)
            #expect(try await Self.originStatus(port, "/open", origin: "http://example.com") == 403)
            #expect(try await Self.originStatus(port, "/open", origin: "null") == 403)
            #expect(try await Self.originStatus(port, "/open", origin: nil) == 101)
            #expect(try await Self.originStatus(port, "/strict", origin: nil) == 403)
            #expect(try await Self.originStatus(port, "/strict", origin: "https://example.com") == 101)
        }
    }

    @Test func upgradeHookSeesTheRequestAndAttachesUserData() async throws {
        struct Seen: Sendable {
            var path: String
            var query: String?
            var token: String?
            var remoteIP: String?
        }
        let seen = Mailbox<Seen>()
        let userData = Mailbox<String>()
        var router = WebSocketRouter()
        router.webSocket("/hook", WebSocketEndpoint(onUpgrade: { request in
            seen.put(Seen(path: request.path, query: request.query, token: request.headerFields.first("X-Token"),
                          remoteIP: request.remoteAddress?.ipAddress))
            guard request.headerFields.first("X-Token") == "secret" else {
                return .reject(status: 401, reason: "bad token")
            }
            try? await Task.sleep(for: .milliseconds(10))  // the hook may suspend
            return .accept(userData: "user-42")
        }, handler: { ws in
            userData.put("\(ws.userData as? String ?? "-") \(ws.request?.path ?? "-") \(ws.request?.query ?? "-")")
            try await ws.send(text: "welcome")
            for try await message in ws.messages { try await ws.send(message) }
        }))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/hook?room=7&x=1",
                                                        extraHeaders: [HTTPField.Name("X-Token")!: "secret"])
            let request = try await seen.take()
            #expect(request.path == "/hook")
            #expect(request.query == "room=7&x=1")
            #expect(request.token == "secret")
            #expect(request.remoteIP == "127.0.0.1")
            #expect(try await userData.take() == "user-42 /hook room=7&x=1")
            #expect(try await client.nextMessage() == .text("welcome"))
            try await client.sendText("hi")
            #expect(try await client.nextMessage() == .text("hi"))
            try await client.sendClose(code: 1000)
            #expect(try await client.nextClose().code == 1000)
            try await client.waitForTCPClose()

            // Refused by the hook: 401 with its reason, then the connection closes.
            let refused = try await Self.refusal(
                httpRequest("GET", "/hook", headers: upgradeHeaders(adding: [("X-Token", "wrong")])), port: port)
            #expect(refused.status == 401)
            #expect(refused.body == "bad token\n")
            #expect(try await seen.take().token == "wrong")
        }
    }
}
