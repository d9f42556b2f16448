import Duplex
import DuplexCore
import NIOCore
import Testing

/// Plain HTTP routes over real TCP: methods, bodies and their bound, async handlers, path
/// parameters (routes and WebSocket endpoints), 405's `Allow`, a failing handler, and the
/// header fields an upgrade hook adds to its answer.
@Suite struct HTTPRouteTests {
    static func router() -> WebSocketRouter {
        var router = WebSocketRouter()
        router.post("/echo-body") { request in
            RouteResponse(status: .created, headerFields: [.contentType: "application/octet-stream"], body: request.body)
        }
        router.get("/slow") { _ in
            try await Task.sleep(for: .milliseconds(50))  // suspends: runs off the event loop
            return .text("slow\n")
        }
        router.get("/fast") { _ in .text("fast\n") }
        router.get("/topics/:name") { request in
            .text("topic \(request.parameters["name"] ?? "-") via \(request.route) query \(request.query ?? "-")\n")
        }
        router.get("/topics/all") { _ in .text("every topic\n") }
        router.get("/topics/:name/messages/:id") { request in
            .text("\(request.parameters["name"] ?? "-") #\(request.parameters["id"] ?? "-")\n")
        }
        router.post("/topics/:name") { request in .text("posted \(request.body.readableBytes) to \(request.parameters["name"]!)\n") }
        router.route(.put, "/items") { request in .text("put \(String(buffer: request.body))\n") }
        router.route(.delete, "/items") { _ in RouteResponse(status: .noContent) }
        router.get("/fails") { _ in
            struct Broken: Error {}
            throw Broken()
        }
        return router
    }

    @Test func postWithABodyAndOtherMethods() async throws {
        try await withServer(Self.router()) { port, _ in
            let client = try await TestClient.raw(port: port)
            try await client.send(raw: "POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
            let echoed = try await client.readResponse()
            #expect(echoed.status == 201)
            #expect(echoed.body == "hello world")
            #expect(echoed.headers.first("Content-Type") == "application/octet-stream")
            #expect(echoed.headers.first("Connection") == "keep-alive")

            // A chunked body, on the same connection.
            try await client.send(raw: "POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  + "5\r\nchunk\r\n3\r\ned!\r\n0\r\n\r\n")
            #expect(try await client.readResponse().body == "chunked!")

            try await client.send(raw: "PUT /items HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            #expect(try await client.readResponse().body == "put abc\n")
            try await client.send(raw: httpRequest("DELETE", "/items"))
            let deleted = try await client.readResponse()
            #expect(deleted.status == 204)
            #expect(deleted.body.isEmpty)
            #expect(try await client.isClosed == false)
            await client.close()
        }
    }

    @Test func bodiesOverTheLimitAnswer413AndClose() async throws {
        try await withServer(Self.router(), maxRequestBodyBytes: 64) { port, _ in
            // Within the limit: served.
            let fits = try await TestClient.raw(port: port)
            let body = String(repeating: "a", count: 64)
            try await fits.send(raw: "POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n" + body)
            #expect(try await fits.readResponse().body == body)
            await fits.close()

            // Announced by Content-Length: refused before the body is read.
            let announced = try await TestClient.raw(port: port)
            try await announced.send(raw: "POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n"
                                     + String(repeating: "b", count: 65))
            let tooLarge = try await announced.readResponse()
            #expect(tooLarge.status == 413)
            #expect(tooLarge.body.contains("64"))
            #expect(tooLarge.headers.first("Connection") == "close")
            try await announced.waitForTCPClose(timeout: .seconds(5))

            // Chunked: refused once the body passes the limit.
            let chunked = try await TestClient.raw(port: port)
            try await chunked.send(raw: "POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   + "28\r\n" + String(repeating: "c", count: 40) + "\r\n")
            try await chunked.send(raw: "28\r\n" + String(repeating: "c", count: 40) + "\r\n0\r\n\r\n")
            #expect(try await chunked.readResponse().status == 413)
            try await chunked.waitForTCPClose(timeout: .seconds(5))

            // Expect: 100-continue within the limit gets its interim answer, then the real one.
            let expecting = try await TestClient.raw(port: port)
            try await expecting.send(raw: "POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            let interim = try await expecting.readResponse()
            #expect(interim.status == 100)
            try await expecting.send(raw: "ok")
            #expect(try await expecting.readResponse().body == "ok")
            await expecting.close()
        }
    }

    @Test func asyncRoutesAnswerInRequestOrder() async throws {
        try await withServer(Self.router()) { port, _ in
            let client = try await TestClient.raw(port: port)
            // Pipelined: the slow answer comes first, the fast one after it, both on one connection.
            try await client.send(raw: httpRequest("GET", "/slow") + httpRequest("GET", "/fast") + httpRequest("HEAD", "/slow"))
            #expect(try await client.readResponse().body == "slow\n")
            #expect(try await client.readResponse().body == "fast\n")
            let head = try await client.wait("the HEAD response") { h in TestClientHandler.parseHead(&h.raw) }
            #expect(head.status == 200)
            #expect(head.headers.first("Content-Length") == "5")
            #expect(try await client.isClosed == false)
            await client.close()
        }
    }

    @Test func pathParametersAndExactPathsFirst() async throws {
        try await withServer(Self.router()) { port, _ in
            let client = try await TestClient.raw(port: port)
            try await client.send(raw: httpRequest("GET", "/topics/news?since=3"))
            #expect(try await client.readResponse().body == "topic news via /topics/:name query since=3\n")
            try await client.send(raw: httpRequest("GET", "/topics/all"))
            #expect(try await client.readResponse().body == "every topic\n")
            try await client.send(raw: httpRequest("GET", "/topics/news/messages/42"))
            #expect(try await client.readResponse().body == "news #42\n")
            try await client.send(raw: "POST /topics/news HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
            #expect(try await client.readResponse().body == "posted 4 to news\n")
            // A parameter matches one non-empty segment.
            for path in ["/topics/", "/topics", "/topics/a/b"] {
                try await client.send(raw: httpRequest("GET", path))
                #expect(try await client.readResponse().status == 404, "\(path)")
            }
            await client.close()
        }
    }

    @Test func methodNotAllowedListsThePathsMethods() async throws {
        try await withServer(Self.router()) { port, _ in
            let client = try await TestClient.raw(port: port)
            try await client.send(raw: httpRequest("DELETE", "/topics/news"))
            let topic = try await client.readResponse()
            #expect(topic.status == 405)
            #expect(topic.headers.first("Allow") == "GET, HEAD, POST")
            // An exact path and a parameter path that both match: the methods of both.
            try await client.send(raw: httpRequest("PATCH", "/topics/all"))
            #expect(try await client.readResponse().headers.first("Allow") == "GET, HEAD, POST")
            try await client.send(raw: httpRequest("GET", "/items"))
            #expect(try await client.readResponse().headers.first("Allow") == "PUT, DELETE")
            #expect(try await client.isClosed == false)
            await client.close()
        }
    }

    @Test func aThrowingRouteIsA500() async throws {
        try await withServer(Self.router()) { port, _ in
            let client = try await TestClient.raw(port: port)
            try await client.send(raw: httpRequest("GET", "/fails"))
            let failed = try await client.readResponse()
            #expect(failed.status == 500)
            #expect(failed.body == "internal server error\n")
            // The connection serves on.
            try await client.send(raw: httpRequest("GET", "/fast"))
            #expect(try await client.readResponse().body == "fast\n")
            await client.close()
        }
    }

    @Test func aRouteIsCancelledWhenItsConnectionCloses() async throws {
        let outcome = Mailbox<String>()
        var router = WebSocketRouter()
        router.get("/long-poll") { _ in
            do {
                try await Task.sleep(for: .seconds(30))
                outcome.put("finished")
            } catch {
                outcome.put("cancelled")
            }
            return .text("late\n")
        }
        try await withServer(router) { port, _ in
            let client = try await TestClient.raw(port: port)
            try await client.send(raw: httpRequest("GET", "/long-poll"))
            try await Task.sleep(for: .milliseconds(50))
            await client.close()
            #expect(try await outcome.take() == "cancelled")
        }
    }

    @Test func webSocketEndpointsWithPathParameters() async throws {
        let hookSaw = Mailbox<String>()
        var router = WebSocketRouter()
        router.webSocket("/publish/:name", WebSocketEndpoint(onUpgrade: { request in
            hookSaw.put("\(request.route) \(request.parameters["name"] ?? "-")")
            return .accept()
        }, handler: { ws in
            try await ws.send(text: "publishing to \(ws.request?.parameters["name"] ?? "-")")
            for try await message in ws.messages { try await ws.send(message) }
        }))
        router.webSocket("/publish/admin", WebSocketEndpoint(callbacks: WebSocketCallbacks(
            onOpen: { ws in ws.send(text: "admin \(ws.request?.parameters.isEmpty == true)") },
            onMessage: { _, _ in }
        )))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/publish/weather?x=1")
            #expect(try await hookSaw.take() == "/publish/:name weather")
            #expect(try await client.nextMessage() == .text("publishing to weather"))
            try await client.sendClose(code: 1000)
            #expect(try await client.nextClose().code == 1000)

            let admin = try await TestClient.webSocket(port: port, path: "/publish/admin")
            #expect(try await admin.nextMessage() == .text("admin true"))
            await admin.close()

            // A plain GET of a parameter endpoint: 426, as for an exact one.
            let plain = try await TestClient.raw(port: port)
            try await plain.send(raw: httpRequest("GET", "/publish/weather"))
            #expect(try await plain.readResponse().status == 426)
            await plain.close()
        }
    }

    @Test func upgradeDecisionsCarryHeaderFields() async throws {
        var router = WebSocketRouter()
        router.webSocket("/session", WebSocketEndpoint(onUpgrade: { request in
            guard request.headerFields[.authorization] == "Bearer good" else {
                return .reject(status: .unauthorized, reason: "who are you?",
                               headerFields: [.wwwAuthenticate: "Bearer realm=\"duplex\""])
            }
            // The handshake's own fields cannot be replaced.
            return .accept(userData: "alice", headerFields: [.setCookie: "session=abc; Path=/; HttpOnly",
                                                             .secWebSocketAccept: "forged"])
        }, handler: { ws in
            try await ws.send(text: "hello \(ws.userData as? String ?? "-")")
            for try await _ in ws.messages {}
        }))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/session", extraHeaders: [.authorization: "Bearer good"])
            let answer = try #require(client.handshake)
            #expect(answer.status == 101)
            #expect(answer.headers.values("Set-Cookie") == ["session=abc; Path=/; HttpOnly"])
            #expect(answer.headers.values("Sec-WebSocket-Accept").count == 1)
            #expect(try await client.nextMessage() == .text("hello alice"))
            await client.close()

            let refused = try await TestClient.raw(port: port)
            try await refused.send(raw: httpRequest("GET", "/session", headers: upgradeHeaders(adding: [("Authorization", "Bearer bad")])))
            let answer401 = try await refused.readResponse()
            #expect(answer401.status == 401)
            #expect(answer401.statusLine == "HTTP/1.1 401 Unauthorized")
            #expect(answer401.headers.first("WWW-Authenticate") == "Bearer realm=\"duplex\"")
            #expect(answer401.body == "who are you?\n")
            try await refused.waitForTCPClose(timeout: .seconds(5))
        }
    }
}
