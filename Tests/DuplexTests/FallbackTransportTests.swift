@testable import Duplex
import DuplexCore
import Foundation
import NIOCore
import NIOPosix
import Testing

/// The HTTP fallback transports over loopback: one endpoint serves WebSocket, SSE and
/// long-polling clients; echo, topics, big and binary messages, replay after a reconnect,
/// expiry, unknown sessions, bodies over the limits, closing with a code and reason.
@Suite struct FallbackTransportTests {
    /// `/echo` (callbacks), `/async` (async handler), `/room` (a topic: each message to every
    /// member, the sender too), `/close` (closes with 4001 "asked to" on the message "close").
    static func router(fallback: HTTPFallbackConfiguration = HTTPFallbackConfiguration(), closes: Mailbox<CloseFrame>? = nil) -> WebSocketRouter {
        var router = WebSocketRouter()
        var echo = callbackEcho(configuration: quietConfiguration(limits: Limits(maxFrameSize: 4 << 20, maxMessageSize: 4 << 20)), closes: closes)
        echo.fallback = fallback
        router.webSocket("/echo", echo)
        var asyncEndpoint = asyncEcho(configuration: quietConfiguration())
        asyncEndpoint.fallback = fallback
        router.webSocket("/async", asyncEndpoint)
        var room = TopicTests.roomEndpoint()
        room.fallback = fallback
        router.webSocket("/room", room)
        router.webSocket("/close", WebSocketEndpoint(configuration: quietConfiguration()) { ws in
            for try await message in ws.messages where message == .text("close") {
                try await ws.close(code: CloseCode(rawValue: 4001), reason: "asked to")
            }
        })
        return router
    }

    @Test func sseEchoesTextAndBinary() async throws {
        try await withServer(Self.router(), group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                for path in ["/echo", "/async"] {
                    let session = try await FallbackTestSession.open(port: port, path: path, transport: "sse")
                    let stream = try await session.stream()
                    #expect(try await session.post("data: hello\ndata: world\n\nevent: binary\ndata: AAEC/w==\n\n") == 204)
                    let text = try await stream.nextMessageEvent()
                    #expect(text == .init(id: "1", type: nil, data: "hello\nworld"))
                    let binary = try await stream.nextMessageEvent()
                    #expect(binary == .init(id: "2", type: "binary", data: "AAEC/w=="))
                    await stream.close()
                }
            }
        }
    }

    @Test func longPollEchoesAndAllowsOnePendingGet() async throws {
        try await withServer(Self.router(), group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                let session = try await FallbackTestSession.open(port: port, path: "/async", transport: "longpoll")
                let first = try await HTTPTestConnection.connect(port: port)
                let second = try await HTTPTestConnection.connect(port: port)
                first.send("GET", session.target)  // held: nothing to carry yet
                try await Task.sleep(for: .milliseconds(100))
                let refused = try await session.poll(on: second)
                #expect(refused.status == 400)
                #expect(try await session.post("data: ping\n\n") == 204)
                let answer = try await first.response()
                #expect(answer.status == 200)
                #expect(pollEvents(answer.text) == [.init(id: "1", type: nil, data: "ping")])
                // The next poll acknowledges 1 and waits for 2.
                #expect(try await session.post("event: text64\ndata: YQ0KYg==\n\n") == 204)
                let next = try await session.poll(last: 1, on: first)
                #expect(pollEvents(next.text) == [.init(id: "2", type: "text64", data: "YQ0KYg==")])
                await first.close()
                await second.close()
            }
        }
    }

    @Test func bigAndBinaryMessagesCrossBothTransports() async throws {
        try await withServer(Self.router(), maxRequestBodyBytes: 8 << 20, group: fallbackLoop) { port, _ in
            try await withTimeLimit(30) {
                let payload = ByteBuffer(bytes: (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
                var encoded = ByteBuffer()
                encoded.writeString("event: binary\ndata: ")
                encoded.writeString(Data(payload.readableBytesView).base64EncodedString())
                encoded.writeString("\n\n")
                let body = String(buffer: encoded)
                let sse = try await FallbackTestSession.open(port: port, path: "/echo", transport: "sse")
                let stream = try await sse.stream()
                #expect(try await sse.post(body) == 204)
                let event = try #require(try await stream.nextMessageEvent())
                #expect(event.type == "binary")
                #expect(Data(base64Encoded: event.data ?? "").map { ByteBuffer(bytes: $0) } == payload)
                await stream.close()

                let poll = try await FallbackTestSession.open(port: port, path: "/echo", transport: "longpoll")
                let connection = try await HTTPTestConnection.connect(port: port)
                #expect(try await poll.post(body) == 204)
                let answer = try await poll.poll(on: connection)
                let events = pollEvents(answer.text)
                #expect(events.count == 1)
                #expect(Data(base64Encoded: events.first?.data ?? "").map { ByteBuffer(bytes: $0) } == payload)
                await connection.close()
            }
        }
    }

    @Test func topicsReachWebSocketSSEAndLongPollMembers() async throws {
        try await withServer(Self.router(), group: fallbackLoop) { port, server in
            try await withTimeLimit(20) {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/room", configuration: loopbackClientConfiguration())
                let sse = try await FallbackTestSession.open(port: port, path: "/room", transport: "sse")
                let stream = try await sse.stream()
                let poll = try await FallbackTestSession.open(port: port, path: "/room", transport: "longpoll")
                let polling = try await HTTPTestConnection.connect(port: port)
                try await eventually("three members") { server.topics["room"] == 3 }

                try await ws.send(text: "from ws")
                #expect(try await stream.nextMessageEvent()?.data == "from ws")
                var seen = pollEvents(try await poll.poll(on: polling).text)
                #expect(seen.map(\.data) == ["from ws"])

                #expect(try await sse.post("data: from sse\n\n") == 204)
                #expect(try await stream.nextMessageEvent()?.data == "from sse")  // the sender gets it too
                seen = pollEvents(try await poll.poll(last: 1, on: polling).text)
                #expect(seen.map(\.data) == ["from sse"])

                #expect(try await poll.post("data: from longpoll\n\n") == 204)
                #expect(try await stream.nextMessageEvent()?.data == "from longpoll")
                var received: [String] = []
                for try await message in ws.messages {
                    guard case .text(let text) = message else { continue }
                    received.append(text)
                    if received.count == 3 { break }
                }
                #expect(received == ["from ws", "from sse", "from longpoll"])
                #expect(server.publish(.text("from the server"), to: "room") == 3)
                #expect(try await stream.nextMessageEvent()?.data == "from the server")
                try await ws.close()
                await stream.close()
                await polling.close()
            }
        }
    }

    @Test func reconnectWithLastEventIDReplaysMissedMessages() async throws {
        try await withServer(Self.router(), group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                let session = try await FallbackTestSession.open(port: port, path: "/echo", transport: "sse")
                let first = try await session.stream()
                #expect(try await session.post("data: one\n\ndata: two\n\ndata: three\n\n") == 204)
                var ids: [String?] = []
                for _ in 0..<3 { ids.append(try await first.nextMessageEvent()?.id) }
                #expect(ids == ["1", "2", "3"])
                await first.close()
                try await Task.sleep(for: .milliseconds(100))
                #expect(try await session.post("data: four\n\n") == 204)  // while no stream is attached
                let second = try await session.stream(lastEventID: "1")
                var replayed: [String?] = []
                for _ in 0..<3 { replayed.append(try await second.nextMessageEvent()?.data) }
                #expect(replayed == ["two", "three", "four"])
                await second.close()
            }
        }
    }

    @Test func aQuietSessionExpiresAndUnknownSessionsAre404() async throws {
        var fallback = HTTPFallbackConfiguration()
        fallback.sessionTimeout = .milliseconds(300)
        let closes = Mailbox<CloseFrame>()
        try await withServer(Self.router(fallback: fallback, closes: closes), group: fallbackLoop) { port, server in
            try await withTimeLimit(20) {
                let opened = ContinuousClock.now
                let session = try await FallbackTestSession.open(port: port, path: "/echo", transport: "longpoll")
                let close = try await closes.take(timeout: .seconds(5), "the expired session's close")
                #expect(close.code == .abnormalClosure)
                #expect(ContinuousClock.now - opened >= .milliseconds(250))
                try await eventually("the expired session's connection to be over") { server.connectionCount == 0 }
                let connection = try await HTTPTestConnection.connect(port: port)
                #expect(try await session.poll(on: connection).status == 404)
                #expect(try await connection.request("POST", session.target, body: ByteBuffer(string: "data: x\n\n")).status == 404)
                #expect(try await connection.request("GET", "/echo?session=\(SessionID.fresh)").status == 404)
                #expect(try await connection.request("GET", "/echo?session=../x").status == 404)
                // Another endpoint's path does not reach the session either.
                let other = try await FallbackTestSession.open(port: port, path: "/echo", transport: "longpoll")
                #expect(try await connection.request("POST", "/async?session=\(other.id)", body: ByteBuffer(string: "data: x\n\n")).status == 404)
                #expect(try await connection.request("GET", "/echo?transport=carrier-pigeon").status == 400)
                #expect(try await connection.request("GET", "/echo?transport=longpoll").status == 400)
                await connection.close()
            }
        }
    }

    @Test func bodiesOverTheLimitsAre413() async throws {
        try await withServer(Self.router(), maxRequestBodyBytes: 64 << 10, group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                let session = try await FallbackTestSession.open(port: port, path: "/async", transport: "sse")
                let big = String(repeating: "x", count: 100 << 10)
                #expect(try await session.post("data: \(big)\n\n") == 413)  // over maxRequestBodyBytes
                let small = String(repeating: "y", count: 2000)
                let closing = try await FallbackTestSession.open(port: port, path: "/echo", transport: "sse")
                #expect(try await closing.post("data: \(small)\n\n") == 204)
                #expect(try await session.post("event: binary\ndata: !!\n\n") == 400)
                #expect(try await session.post("data: fine\n\n") == 204)
            }
        }
        // A message over the endpoint's message limit, in a body within the server's.
        var router = WebSocketRouter()
        router.webSocket("/tiny", callbackEcho(configuration: quietConfiguration(limits: Limits(maxFrameSize: 1000, maxMessageSize: 1000))))
        try await withServer(router, group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                let session = try await FallbackTestSession.open(port: port, path: "/tiny", transport: "longpoll")
                #expect(try await session.post("data: \(String(repeating: "z", count: 1001))\n\n") == 413)
                #expect(try await session.post("data: \(String(repeating: "z", count: 1000))\n\n") == 204)
            }
        }
    }

    @Test func closeCodesAndReasonsReachBothSides() async throws {
        let closes = Mailbox<CloseFrame>()
        try await withServer(Self.router(closes: closes), group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                // The application closes: the client is told its code and reason, the stream ends.
                let session = try await FallbackTestSession.open(port: port, path: "/close", transport: "sse")
                let stream = try await session.stream()
                #expect(try await session.post("data: close\n\n") == 204)
                let event = try await stream.nextMessageEvent()
                #expect(event?.type == "close")
                #expect(event?.data == "4001 asked to")
                #expect(try await stream.nextEvent() == nil)

                // The client closes: the application sees its code and reason.
                let poll = try await FallbackTestSession.open(port: port, path: "/echo", transport: "longpoll")
                #expect(try await poll.post("event: close\ndata: 4002 client says bye\n\n") == 204)
                let frame = try await closes.take(timeout: .seconds(5), "the client's close")
                #expect(frame == CloseFrame(code: CloseCode(rawValue: 4002), reason: "client says bye"))
                let connection = try await HTTPTestConnection.connect(port: port)
                let answer = try await poll.poll(on: connection)
                #expect(pollEvents(answer.text).last?.data == "4002 client says bye")
                #expect(try await poll.post("data: after the close\n\n") == 404)
                await connection.close()
            }
        }
    }

    @Test func heartbeatsAndPollTimeouts() async throws {
        var fallback = HTTPFallbackConfiguration()
        fallback.heartbeatInterval = .milliseconds(200)
        fallback.pollTimeout = .milliseconds(200)
        try await withServer(Self.router(fallback: fallback), group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                let session = try await FallbackTestSession.open(port: port, path: "/echo", transport: "sse")
                let stream = try await session.stream()
                let beat = try await stream.nextEvent()
                #expect(beat?.comment == "heartbeat")
                await stream.close()

                let poll = try await FallbackTestSession.open(port: port, path: "/echo", transport: "longpoll")
                let connection = try await HTTPTestConnection.connect(port: port)
                let started = ContinuousClock.now
                let empty = try await poll.poll(on: connection)
                #expect(empty.status == 200)
                #expect(empty.body.readableBytes == 0)
                #expect(ContinuousClock.now - started >= .milliseconds(150))
                await connection.close()
            }
        }
    }

    @Test func aStreamGetOpensItsOwnSessionAndDisabledEndpointsRefuse() async throws {
        var router = Self.router()
        var plain = callbackEcho(configuration: quietConfiguration())
        plain.fallback = .disabled
        router.webSocket("/plain", plain)
        try await withServer(router, group: fallbackLoop) { port, server in
            try await withTimeLimit(20) {
                let connection = try await HTTPTestConnection.connect(port: port)
                connection.send("GET", "/room", headers: [("Accept", "text/event-stream")])
                #expect(try await connection.head().status == 200)
                let named = try await connection.nextMessageEvent()
                #expect(named?.type == "session")
                let id = try #require(named?.data)
                try await eventually("the stream's session in the room") { server.topics["room"] == 1 }
                #expect(server.publish(.binary(ByteBuffer(bytes: [9, 8, 7])), to: "room") == 1)
                let event = try await connection.nextMessageEvent()
                #expect(event == .init(id: "1", type: "binary", data: "CQgH"))
                #expect(try await FallbackTestSession(port: port, path: "/room", id: id).post("data: mine\n\n") == 204)
                #expect(try await connection.nextMessageEvent()?.data == "mine")
                await connection.close()

                let refused = try await HTTPTestConnection.connect(port: port)
                #expect(try await refused.request("POST", "/plain?transport=sse").status == 404)
                #expect(try await refused.request("GET", "/plain").status == 426)
                await refused.close()
            }
        }
    }
}

extension FallbackTransportTests {
    @Test func pollAnswersAreBoundedAndOnePostIsInFlight() async throws {
        var fallback = HTTPFallbackConfiguration()
        fallback.maxPollAnswerBytes = 100
        var router = Self.router(fallback: fallback)
        // Reads one message, then waits for the gate: its queue (one message, and a byte budget
        // that lets no second one read ahead) holds the next POST.
        let gate = Gate()
        var held = quietConfiguration(inboundQueueSize: 1)
        held.inboundQueueBytes = 1
        var slow = WebSocketEndpoint(configuration: held) { ws in
            for try await _ in ws.messages { await gate.wait() }
        }
        slow.fallback = fallback
        router.webSocket("/slow", slow)
        try await withServer(router, group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                let session = try await FallbackTestSession.open(port: port, path: "/echo", transport: "longpoll")
                let message = String(repeating: "m", count: 60)
                #expect(try await session.post("data: \(message)1\n\ndata: \(message)2\n\n") == 204)
                let connection = try await HTTPTestConnection.connect(port: port)
                let first = pollEvents(try await session.poll(on: connection).text)
                #expect(first.map(\.id) == ["1"])  // a second event would pass 100 bytes
                let second = pollEvents(try await session.poll(last: 1, on: connection).text)
                #expect(second.map(\.data) == [message + "2"])

                let held = try await FallbackTestSession.open(port: port, path: "/slow", transport: "sse")
                let posting = try await HTTPTestConnection.connect(port: port)
                posting.send("POST", held.target, body: ByteBuffer(string: "data: a\n\ndata: b\n\ndata: c\n\n"))
                try await Task.sleep(for: .milliseconds(200))
                #expect(try await held.post("data: d\n\n") == 400)  // the first POST is still held
                gate.open()
                #expect(try await posting.response().status == 204)
                #expect(try await held.post("data: e\n\n") == 204)
                await connection.close()
                await posting.close()
            }
        }
    }
}

extension FallbackTransportTests {
    /// A client that takes nothing: its undelivered events meet the hard limit and the
    /// backpressure policy, as a WebSocket that stops reading does.
    @Test func anOutboxOverTheHardLimitMeetsTheBackpressurePolicy() async throws {
        let closes = Mailbox<CloseFrame>()
        var router = WebSocketRouter()
        var endpoint = callbackEcho(configuration: quietConfiguration(outboundHighWaterMark: 64 << 10,
                                                                       outboundLowWaterMark: 16 << 10,
                                                                       outboundHardLimit: 128 << 10), closes: closes)
        endpoint.fallback.sessionTimeout = .seconds(30)
        router.webSocket("/echo", endpoint)
        try await withServer(router, group: fallbackLoop) { port, _ in
            try await withTimeLimit(20) {
                let session = try await FallbackTestSession.open(port: port, path: "/echo", transport: "sse")
                let chunk = String(repeating: "p", count: 8 << 10)
                let body = String(repeating: "data: \(chunk)\n\n", count: 24)  // 192 KiB echoed, no stream to take it
                _ = try await session.post(body)
                let close = try await closes.take(timeout: .seconds(5), "the policy's close")
                #expect(close.code == .tryAgainLater)
                let stream = try await session.stream()
                var last: HTTPTestConnection.Event?
                while let event = try await stream.nextMessageEvent() { last = event }
                #expect(last?.type == "close")
                #expect(last?.data?.hasPrefix("1013 ") == true)
                await stream.close()
            }
        }
    }
}

/// The fallback tests' server and client loop: their base64 work on megabyte messages (a debug
/// build) must not hold up the loops of the suites that measure rates or time (testLoop).
let fallbackLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

extension SessionID {
    /// A well-formed id no server made.
    static var fresh: String { make() }
}
