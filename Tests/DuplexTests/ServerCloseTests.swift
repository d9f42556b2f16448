import Duplex
import DuplexCore
import NIOCore
import Testing

/// The closing handshake and the failures that close a connection with a code.
@Suite struct ServerCloseTests {
    @Test func clientInitiatedCloseIsEchoedAndObservableInTheAsyncHandler() async throws {
        let seen = Mailbox<String>()
        let waited = Mailbox<CloseFrame>()
        var router = WebSocketRouter()
        router.webSocket("/echo", WebSocketEndpoint(configuration: quietConfiguration()) { ws in
            seen.put("open: \(ws.closeCode.map { "\($0.rawValue)" } ?? "nil")")
            for try await message in ws.messages { try await ws.send(message) }
            // Right after the message loop ended on the peer's close frame.
            seen.put("\(ws.closeCode.map { "\($0.rawValue)" } ?? "nil") \(ws.closeReason ?? "nil")")
            waited.put(await ws.waitForClose())
        })
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port)
            try await client.sendText("before")
            #expect(try await client.nextMessage() == .text("before"))
            try await client.sendClose(code: 3000, reason: "bye")
            let echo = try await client.nextClose()
            #expect(echo.code == 3000)
            try await client.waitForTCPClose()
            #expect(try await seen.take() == "open: nil")
            #expect(try await seen.take() == "3000 bye")
            #expect(try await waited.take() == CloseFrame(code: CloseCode(3000), reason: "bye"))
        }
    }

    @Test func clientInitiatedCloseInTheCallbackAPI() async throws {
        let closes = Mailbox<CloseFrame>()
        var router = WebSocketRouter()
        router.webSocket("/echo", callbackEcho(configuration: quietConfiguration(), closes: closes))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port)
            try await client.sendClose(code: 3000, reason: "bye")
            #expect(try await client.nextClose().code == 3000)
            try await client.waitForTCPClose()
            #expect(try await closes.take() == CloseFrame(code: CloseCode(3000), reason: "bye"))

            // An empty close frame is answered with an empty one and reported as 1005.
            let second = try await TestClient.webSocket(port: port)
            try await second.sendClose(code: nil)
            let echo = try await second.nextClose()
            #expect(echo.code == nil)
            try await second.waitForTCPClose()
            #expect(try await closes.take().code == .noStatusReceived)
        }
    }

    @Test func serverInitiatedCloseReachesTheClient() async throws {
        let results = Mailbox<CloseFrame>()
        var router = WebSocketRouter()
        router.webSocket("/async", WebSocketEndpoint(configuration: quietConfiguration()) { ws in
            for try await message in ws.messages {
                if case .text("close please") = message {
                    results.put(try await ws.close(code: CloseCode(4000), reason: "server says bye"))
                }
            }
        })
        router.webSocket("/callbacks", WebSocketEndpoint(configuration: quietConfiguration(), callbacks: WebSocketCallbacks(
            onMessage: { ws, _ in try? ws.close(code: CloseCode(4000), reason: "server says bye") },
            onClose: { _, frame in results.put(frame) }
        )))
        try await withServer(router) { port, _ in
            for path in ["/async", "/callbacks"] {
                let client = try await TestClient.webSocket(port: port, path: path)
                try await client.sendText("close please")
                let close = try await client.nextClose()
                #expect(close.code == 4000)
                #expect(close.reason == "server says bye")
                // The test client echoes the close; the server then closes the TCP connection.
                try await client.waitForTCPClose()
                #expect(try await results.take() == CloseFrame(code: CloseCode(4000)), "\(path)")
            }
        }
    }

    @Test func handlerReturningClosesWith1000AndThrowingWith1011() async throws {
        struct Oops: Error {}
        var router = WebSocketRouter()
        router.webSocket("/returns", WebSocketEndpoint(configuration: quietConfiguration()) { ws in
            try await ws.send(text: "done")
        })
        router.webSocket("/throws", WebSocketEndpoint(configuration: quietConfiguration()) { _ in
            throw Oops()
        })
        try await withServer(router) { port, _ in
            let returns = try await TestClient.webSocket(port: port, path: "/returns")
            #expect(try await returns.nextMessage() == .text("done"))
            #expect(try await returns.nextClose().code == 1000)
            try await returns.waitForTCPClose()
            let throwsClient = try await TestClient.webSocket(port: port, path: "/throws")
            #expect(try await throwsClient.nextClose().code == 1011)
            try await throwsClient.waitForTCPClose()
        }
    }

    @Test func invalidSendsAreRefused() async throws {
        let errors = Mailbox<String>()
        var router = WebSocketRouter()
        router.webSocket("/bad", WebSocketEndpoint(configuration: quietConfiguration()) { ws in
            do {
                try await ws.close(code: .abnormalClosure)
            } catch WebSocketError.invalidSend(let error) {
                errors.put("close: \(error)")
            }
            do {
                try await ws.ping(ByteBuffer(bytes: patternBytes(126)))
            } catch WebSocketError.invalidSend(let error) {
                errors.put("ping: \(error)")
            }
            try await ws.close(code: .normalClosure)
            do {
                try await ws.send(text: "too late")
            } catch WebSocketError.closed {
                errors.put("send after close")
            }
        })
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/bad")
            #expect(try await client.nextClose().code == 1000)
            #expect(try await errors.take().hasPrefix("close: "))
            #expect(try await errors.take().hasPrefix("ping: "))
            #expect(try await errors.take() == "send after close")
            try await client.waitForTCPClose()
        }
    }

    static func failureRouter(closes: Mailbox<CloseFrame?>) -> WebSocketRouter {
        var router = WebSocketRouter()
        let small = quietConfiguration(limits: Limits(maxFrameSize: 4096, maxMessageSize: 1024))
        router.webSocket("/echo", asyncEcho(configuration: small, closes: closes))
        return router
    }

    /// Opens a connection, sends `bytes` (after `prefix` messages that must echo), and expects
    /// a close frame with `code`, then the TCP close; the server reports the same code.
    static func expectFailure(port: Int, closes: Mailbox<CloseFrame?>, code: UInt16,
                              _ send: (TestClient) async throws -> Void) async throws {
        let client = try await TestClient.webSocket(port: port, autoCloseReply: false)
        try await client.sendText("ok")
        #expect(try await client.nextMessage() == .text("ok"))
        try await send(client)
        let close = try await client.nextClose()
        #expect(close.code == code)
        try await client.waitForTCPClose(timeout: .seconds(5))
        #expect(try await closes.take()?.code == CloseCode(code))
    }

    @Test func protocolViolationsCloseWith1002() async throws {
        let closes = Mailbox<CloseFrame?>()
        try await withServer(Self.failureRouter(closes: closes)) { port, _ in
            // An unmasked frame from a client.
            try await Self.expectFailure(port: port, closes: closes, code: 1002) { client in
                try await client.sendFrame(.text, ByteBuffer(string: "naked"), masked: false)
            }
            // A reserved bit without an extension.
            try await Self.expectFailure(port: port, closes: closes, code: 1002) { client in
                try await client.sendFrame(.text, ByteBuffer(string: "rsv"), reservedBits: .rsv1)
            }
            // A reserved opcode (0x3).
            try await Self.expectFailure(port: port, closes: closes, code: 1002) { client in
                try await client.send(raw: ByteBuffer(bytes: [0x83, 0x80, 1, 2, 3, 4]))
            }
            // A continuation with no message started.
            try await Self.expectFailure(port: port, closes: closes, code: 1002) { client in
                try await client.sendFrame(.continuation, ByteBuffer(string: "x"))
            }
            // A fragmented ping.
            try await Self.expectFailure(port: port, closes: closes, code: 1002) { client in
                try await client.sendFrame(.ping, ByteBuffer(string: "x"), fin: false)
            }
            // A close code that may not be sent.
            try await Self.expectFailure(port: port, closes: closes, code: 1002) { client in
                try await client.sendClose(code: 1005)
            }
        }
    }

    @Test func invalidUTF8ClosesWith1007() async throws {
        let closes = Mailbox<CloseFrame?>()
        try await withServer(Self.failureRouter(closes: closes)) { port, _ in
            try await Self.expectFailure(port: port, closes: closes, code: 1007) { client in
                try await client.sendFrame(.text, ByteBuffer(bytes: [0x68, 0x69, 0xC3, 0x28]))
            }
            // Fails fast, inside an unfinished fragmented message.
            try await Self.expectFailure(port: port, closes: closes, code: 1007) { client in
                try await client.sendFrame(.text, ByteBuffer(bytes: [0xF4, 0x90, 0x80, 0x80]), fin: false)
            }
            // In a close reason.
            try await Self.expectFailure(port: port, closes: closes, code: 1007) { client in
                var payload = ByteBuffer()
                payload.writeInteger(UInt16(1000))
                payload.writeBytes([0xFF])
                try await client.sendFrame(.close, payload)
            }
        }
    }

    @Test func messagesOverTheLimitCloseWith1009() async throws {
        let closes = Mailbox<CloseFrame?>()
        try await withServer(Self.failureRouter(closes: closes)) { port, _ in
            // At the limit: fine.
            let client = try await TestClient.webSocket(port: port)
            try await client.sendBinary(patternBytes(1024))
            #expect(try await client.nextMessage() == .binary(patternBytes(1024)))
            await client.close()
            _ = try await closes.take()
            // One frame over the message limit.
            try await Self.expectFailure(port: port, closes: closes, code: 1009) { client in
                try await client.sendBinary(patternBytes(1025))
            }
            // Fragments that add up to more than the limit.
            try await Self.expectFailure(port: port, closes: closes, code: 1009) { client in
                try await client.sendFrame(.text, ByteBuffer(string: String(repeating: "a", count: 600)), fin: false)
                try await client.sendFrame(.continuation, ByteBuffer(string: String(repeating: "a", count: 600)))
            }
            // A frame header announcing more than the frame limit: refused before the payload.
            try await Self.expectFailure(port: port, closes: closes, code: 1009) { client in
                var header = ByteBuffer()
                FrameHeader(opcode: .binary, maskKey: .random(), payloadLength: 1 << 30).write(to: &header)
                try await client.send(raw: header)
            }
        }
    }
}
