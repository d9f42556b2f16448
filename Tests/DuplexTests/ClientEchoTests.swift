import Duplex
import DuplexCore
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// The client against the Duplex server over loopback.
@Suite struct ClientEchoTests {
    @Test func echoesTextAndBinary() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: loopbackClientConfiguration())
                var messages = ws.messages.makeAsyncIterator()
                try await ws.send(text: "hello")
                #expect(try await messages.next() == .text("hello"))
                try await ws.send(text: "")
                #expect(try await messages.next() == .text(""))
                try await ws.send(text: "héllo wörld ✓ 🎉")
                #expect(try await messages.next() == .text("héllo wörld ✓ 🎉"))
                let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
                try await ws.send(binary: bytes)
                #expect(try await messages.next() == .binary(ByteBuffer(bytes: bytes)))
                try await ws.ping(ByteBuffer(bytes: [1, 2, 3]))
                try await ws.send(text: "after ping")
                #expect(try await messages.next() == .text("after ping"))
                let close = try await ws.close()
                #expect(close.code == .normalClosure)
                #expect(ws.closeCode == .normalClosure)
                #expect(try await messages.next() == nil)
            }
        }
    }

    @Test func manyMessagesKeepTheirOrder() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: loopbackClientConfiguration())
                let count = 2000
                let sender = Task {
                    for i in 0..<count { try await ws.send(text: "message \(i)") }
                }
                var received = 0
                for try await message in ws.messages {
                    #expect(message == .text("message \(received)"))
                    received += 1
                    if received == count { break }
                }
                try await sender.value
                #expect(received == count)
                _ = try await ws.close()
            }
        }
    }

    @Test func fragmentedSendsAreReassembledByTheServer() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                var configuration = loopbackClientConfiguration()
                configuration.webSocket.fragmentSize = 1000
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: configuration)
                let text = String(repeating: "fragment ", count: 1000)
                try await ws.send(text: text)
                var messages = ws.messages.makeAsyncIterator()
                #expect(try await messages.next() == .text(text))
                _ = try await ws.close()
            }
        }
    }

    @Test func theServerSeesTheRequestAsSent() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                var headers = HTTPFields()
                headers.add(name: "X-Test", value: "forty-two")
                headers.add(name: "Authorization", value: "Bearer t0ken")
                let configuration = loopbackClientConfiguration(subprotocols: ["nope", "chat.v2", "chat.v1"], headers: headers,
                                                                origin: "https://app.example")
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/inspect?room=1", configuration: configuration)
                #expect(ws.subprotocol == "chat.v2")
                var messages = ws.messages.makeAsyncIterator()
                let seen = try await messages.next()
                #expect(seen == .text("/inspect?room=1|127.0.0.1:\(port)|https://app.example|Bearer t0ken|forty-two|chat.v2"))
                _ = try await ws.close()
            }
        }
    }

    @Test func noSubprotocolWhenNoneIsShared() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo",
                                                     configuration: loopbackClientConfiguration(subprotocols: ["other"]))
                #expect(ws.subprotocol == nil)
                _ = try await ws.close()
            }
        }
    }

    @Test(arguments: [(UInt16(1000), ""), (1001, "going"), (1011, "oops"), (4001, "custom-reason")])
    func theServersCloseCodeIsObservable(_ code: UInt16, _ reason: String) async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/close?code=\(code)&reason=\(reason)",
                                                     configuration: loopbackClientConfiguration())
                // A close frame from the server ends the messages cleanly, whatever its code.
                for try await message in ws.messages { Issue.record("unexpected \(message)") }
                let close = await ws.waitForClose()
                #expect(close.code == CloseCode(code))
                #expect(close.reason == reason)
                #expect(ws.closeCode == CloseCode(code))
            }
        }
    }

    @Test(arguments: [UInt16(1000), 1001, 3000, 4999])
    func theClientsCloseCodeIsEchoed(_ code: UInt16) async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: loopbackClientConfiguration())
                let close = try await ws.close(code: CloseCode(code), reason: "bye")
                #expect(close.code == CloseCode(code))
                #expect(ws.closeCode == CloseCode(code))
                await #expect(throws: WebSocketError.self) { try await ws.send(text: "too late") }
            }
        }
    }

    @Test func invalidCloseIsRefusedLocally() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: loopbackClientConfiguration())
                await #expect(throws: WebSocketError.invalidSend(.invalidCloseCode(.abnormalClosure))) {
                    try await ws.close(code: .abnormalClosure)
                }
                try await ws.send(text: "still open")
                var messages = ws.messages.makeAsyncIterator()
                #expect(try await messages.next() == .text("still open"))
                _ = try await ws.close()
            }
        }
    }

    @Test func unknownPathIsA404WithHeaders() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                do {
                    _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/nowhere", configuration: loopbackClientConfiguration())
                    Issue.record("connected to a path without an endpoint")
                } catch WebSocketError.handshakeFailed(.unexpectedStatus(let status, let headers)) {
                    #expect(status == 404)
                    #expect(headers.first("Content-Type")?.hasPrefix("text/plain") == true)
                }
            }
        }
    }

    @Test func tooBigMessageFromTheServerFailsWith1009() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                var configuration = loopbackClientConfiguration()
                configuration.webSocket.limits = Limits(maxFrameSize: 1000, maxMessageSize: 1000)
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: configuration)
                // The client may send big messages; the echo coming back is over the client's limit.
                try await ws.send(text: String(repeating: "x", count: 5000))
                do {
                    for try await message in ws.messages { Issue.record("unexpected \(message)") }
                    Issue.record("the messages ended cleanly")
                } catch WebSocketError.closed(let frame) {
                    #expect(frame.code == .messageTooBig)
                }
                #expect(await ws.waitForClose().code == .messageTooBig)
            }
        }
    }

    @Test func keepalivePingsAreAnswered() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                var configuration = loopbackClientConfiguration()
                configuration.webSocket.pingInterval = .milliseconds(50)
                configuration.webSocket.pongTimeout = .milliseconds(500)
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", configuration: configuration)
                // Several ping rounds pass; the connection stays open because the server answers.
                try await Task.sleep(for: .milliseconds(400))
                try await ws.send(text: "alive")
                var messages = ws.messages.makeAsyncIterator()
                #expect(try await messages.next() == .text("alive"))
                #expect(ws.closeFrame == nil)
                _ = try await ws.close()
            }
        }
    }

    @Test func aDroppedConnectionGives1006() async throws {
        // A server that completes the handshake and then drops the TCP connection without a close frame.
        let server = try await CannedHTTPServer.start(closeAfterAnswer: true) { switchingProtocols(for: $0) }
        defer { Task { await server.stop() } }
        try await withTimeLimit {
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(server.port)/", configuration: loopbackClientConfiguration())
            do {
                for try await message in ws.messages { Issue.record("unexpected \(message)") }
                Issue.record("the messages ended cleanly")
            } catch WebSocketError.closed(let frame) {
                #expect(frame.code == .abnormalClosure)
            }
            #expect(ws.closeCode == .abnormalClosure)
            await #expect(throws: WebSocketError.self) { try await ws.send(text: "nobody there") }
        }
    }

    @Test func callbacksRunOnTheEventLoop() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                let received = AsyncStream<String>.makeStream()
                let closed = AsyncStream<CloseFrame>.makeStream()
                let opened = NIOLockedValueBox(false)
                let ws = try await WebSocketConnection.connect(
                    to: "ws://127.0.0.1:\(port)/echo", configuration: loopbackClientConfiguration(),
                    callbacks: WebSocketCallbacks(
                        onOpen: { ws in
                            opened.withLockedValue { $0 = true }
                            ws.send(text: "sent from onOpen")
                        },
                        onMessage: { ws, data in
                            ws.socket.eventLoop.preconditionInEventLoop()
                            received.continuation.yield(data.text ?? "binary \(data.bytes.readableBytes)")
                            // Answering from the callback: a ping-pong of three rounds.
                            if data.text == "sent from onOpen" { ws.send(text: "round 2") }
                            if data.text == "round 2" { ws.send(binary: ByteBuffer(bytes: [1, 2, 3])) }
                        },
                        onClose: { _, frame in closed.continuation.yield(frame) }
                    ))
                #expect(opened.withLockedValue { $0 })
                var texts = received.stream.makeAsyncIterator()
                #expect(await texts.next() == "sent from onOpen")
                #expect(await texts.next() == "round 2")
                #expect(await texts.next() == "binary 3")
                try await ws.send(text: "from a task")
                #expect(await texts.next() == "from a task")
                #expect(try await ws.close(code: CloseCode(4100)).code == CloseCode(4100))
                var closes = closed.stream.makeAsyncIterator()
                #expect(await closes.next()?.code == CloseCode(4100))
            }
        }
    }

    @Test func deflateWithTheDuplexServer() async throws {
        var router = WebSocketRouter()
        router.webSocket("/deflate", WebSocketEndpoint(extensions: [PerMessageDeflate.ServerNegotiator()]) { ws in
            for try await message in ws.messages { try await ws.send(message) }
        })
        var webSocket = WebSocketConfiguration()
        webSocket.pingInterval = nil
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0, webSocket: webSocket), router: router,
                                     logger: clientTestLogger("duplex.server"))
        let port = try #require(try await server.start().port)
        do {
            try await withTimeLimit {
                var configuration = loopbackClientConfiguration()
                configuration.extensions = [PerMessageDeflate.ClientNegotiator()]
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/deflate", configuration: configuration)
                var messages = ws.messages.makeAsyncIterator()
                let text = String(repeating: "squeeze me ", count: 50_000)
                for _ in 0..<3 {
                    try await ws.send(text: text)
                    #expect(try await messages.next() == .text(text))
                }
                #expect(try await ws.close().code == .normalClosure)
            }
        } catch {
            await server.shutdown(gracePeriod: .zero)
            throw error
        }
        await server.shutdown(gracePeriod: .zero)
    }
}
