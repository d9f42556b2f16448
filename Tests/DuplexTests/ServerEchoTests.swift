import Duplex
import DuplexCore
import NIOCore
import Testing

/// Echo through both application APIs: the async `WebSocketConnection` and the event-loop callbacks.
@Suite struct ServerEchoTests {
    enum API: String, CaseIterable, CustomStringConvertible {
        case async, callbacks
        var description: String { rawValue }
    }

    static func router(_ api: API, limits: Limits = .default) -> WebSocketRouter {
        var router = WebSocketRouter()
        router.webSocket("/echo", api == .async ? asyncEcho(configuration: quietConfiguration(limits: limits))
                                                : callbackEcho(configuration: quietConfiguration(limits: limits)))
        return router
    }

    @Test(arguments: API.allCases)
    func textBinaryAndEmptyMessages(_ api: API) async throws {
        try await withServer(Self.router(api)) { port, _ in
            let client = try await TestClient.webSocket(port: port)
            try await client.sendText("hello, wörld ✓ 🎉")
            #expect(try await client.nextMessage() == .text("hello, wörld ✓ 🎉"))
            let bytes = patternBytes(70_000)  // 64-bit length encoding
            try await client.sendBinary(bytes)
            #expect(try await client.nextMessage() == .binary(bytes))
            try await client.sendBinary(patternBytes(300))  // 16-bit length encoding
            #expect(try await client.nextMessage() == .binary(patternBytes(300)))
            try await client.sendText("")
            #expect(try await client.nextMessage() == .text(""))
            try await client.sendBinary([])
            #expect(try await client.nextMessage() == .binary([]))
            // Many small messages in one write come back in order.
            var batch = ByteBuffer()
            for i in 0..<100 {
                FrameWriter.write(opcode: .text, maskKey: .random(), payload: ByteBuffer(string: "m\(i)"), to: &batch)
            }
            try await client.send(raw: batch)
            for i in 0..<100 {
                #expect(try await client.nextMessage() == .text("m\(i)"))
            }
            try await client.sendClose(code: 1000)
            #expect(try await client.nextClose().code == 1000)
            try await client.waitForTCPClose()
        }
    }

    @Test(arguments: API.allCases)
    func fragmentedMessagesAreReassembled(_ api: API) async throws {
        try await withServer(Self.router(api)) { port, _ in
            let client = try await TestClient.webSocket(port: port)
            // Text split inside a multi-byte character, with a ping between fragments.
            let text = Array("fragments: ü€𝄞 done".utf8)
            try await client.sendFrame(.text, ByteBuffer(bytes: text[0..<13]), fin: false)
            try await client.sendPing([7, 7])
            try await client.sendFrame(.continuation, ByteBuffer(bytes: text[13..<18]), fin: false)
            try await client.sendFrame(.continuation, ByteBuffer(bytes: text[18...]), fin: true)
            #expect(try await client.next() == .pong([7, 7]))
            #expect(try await client.nextMessage() == .text("fragments: ü€𝄞 done"))

            // Binary in many fragments, some empty.
            let bytes = patternBytes(10_000, seed: 3)
            try await client.sendFrame(.binary, ByteBuffer(bytes: bytes[0..<1000]), fin: false)
            try await client.sendFrame(.continuation, ByteBuffer(), fin: false)
            for start in stride(from: 1000, to: 10_000, by: 3000) {
                try await client.sendFrame(.continuation, ByteBuffer(bytes: bytes[start..<(start + 3000)]), fin: start + 3000 == 10_000)
            }
            #expect(try await client.nextMessage() == .binary(bytes))
            await client.close()
        }
    }

    @Test(arguments: API.allCases)
    func sixteenMebibyteMessageWithTheLargeLimits(_ api: API) async throws {
        try await withServer(Self.router(api, limits: .large)) { port, _ in
            let client = try await TestClient.webSocket(port: port)
            let big = patternBytes(16 << 20, seed: 9)
            try await client.sendBinary(big)
            #expect(try await client.nextMessage(timeout: .seconds(30)) == .binary(big))
            // And 4 MiB of text in fragments of 1 MiB.
            let text = String(repeating: "ünïcödé ", count: (4 << 20) / 12)
            let bytes = Array(text.utf8)
            for start in stride(from: 0, to: bytes.count, by: 1 << 20) {
                let end = min(start + (1 << 20), bytes.count)
                try await client.sendFrame(start == 0 ? .text : .continuation, ByteBuffer(bytes: bytes[start..<end]),
                                           fin: end == bytes.count)
            }
            #expect(try await client.nextMessage(timeout: .seconds(30)) == .text(text))
            await client.close()
        }
    }

    @Test(arguments: API.allCases)
    func pingIsAnsweredWithItsPayload(_ api: API) async throws {
        try await withServer(Self.router(api)) { port, _ in
            let client = try await TestClient.webSocket(port: port)
            try await client.sendPing(Array("are you there?".utf8))
            #expect(try await client.next() == .pong(Array("are you there?".utf8)))
            try await client.sendPing([])
            #expect(try await client.next() == .pong([]))
            let max = patternBytes(125)
            try await client.sendPing(max)
            #expect(try await client.next() == .pong(max))
            // An unsolicited pong is ignored.
            try await client.sendFrame(.pong, ByteBuffer(string: "heartbeat"))
            try await client.sendText("still here")
            #expect(try await client.next() == .text("still here"))
            await client.close()
        }
    }

    @Test func callbackEndpointCanSendInOnOpen() async throws {
        // onOpen runs as the connection is set up: what it sends must follow the 101 response.
        let opened = Mailbox<String?>()
        var router = WebSocketRouter()
        router.webSocket("/greet", WebSocketEndpoint(subprotocols: ["greet.v1"], configuration: quietConfiguration(),
                                                     callbacks: WebSocketCallbacks(
            onOpen: { ws in
                opened.put(ws.socket.subprotocol)
                ws.send(text: "welcome")
                ws.send(binary: ByteBuffer(bytes: [1, 2, 3]))
                try? ws.ping(ByteBuffer(string: "hi"))
            },
            onMessage: { ws, data in ws.send(data) }
        )))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/greet", subprotocols: ["greet.v1"])
            #expect(try await opened.take() == "greet.v1")
            #expect(try await client.next() == .text("welcome"))
            #expect(try await client.next() == .binary([1, 2, 3]))
            #expect(try await client.next() == .ping(Array("hi".utf8)))
            try await client.sendText("echo")
            #expect(try await client.nextMessage() == .text("echo"))
            await client.close()
        }
    }

    @Test(arguments: API.allCases)
    func framesSentWithTheUpgradeRequestAreNotLost(_ api: API) async throws {
        // A client may pipeline frames right behind its request: they arrive in the same read as
        // the request and must reach the WebSocket, with or without an (async) upgrade hook.
        var router = Self.router(api)
        let hooked = api == .async
            ? WebSocketEndpoint(configuration: quietConfiguration(), onUpgrade: { _ in
                try? await Task.sleep(for: .milliseconds(20))
                return .accept()
            }, handler: { ws in for try await m in ws.messages { try await ws.send(m) } })
            : WebSocketEndpoint(configuration: quietConfiguration(), onUpgrade: { _ in
                try? await Task.sleep(for: .milliseconds(20))
                return .accept()
            }, callbacks: WebSocketCallbacks(onMessage: { ws, data in ws.send(data) }))
        router.webSocket("/hooked", hooked)
        var early = ByteBuffer()
        FrameWriter.write(opcode: .text, maskKey: .random(), payload: ByteBuffer(string: "early 1"), to: &early)
        FrameWriter.write(opcode: .ping, maskKey: .random(), payload: ByteBuffer(string: "p"), to: &early)
        FrameWriter.write(opcode: .binary, maskKey: .random(), payload: ByteBuffer(bytes: [9, 8, 7]), to: &early)
        try await withServer(router) { port, _ in
            for path in ["/echo", "/hooked"] {
                let client = try await TestClient.webSocket(port: port, path: path, withRequest: early)
                // The pong is automatic; the async API's echoes go through a task and may follow it.
                var events: [WSEvent] = []
                for _ in 0..<3 { events.append(try await client.next()) }
                #expect(events.filter { $0 != .pong(Array("p".utf8)) } == [.text("early 1"), .binary([9, 8, 7])], "\(path)")
                #expect(events.contains(.pong(Array("p".utf8))), "\(path)")
                try await client.sendText("later")
                #expect(try await client.next() == .text("later"), "\(path)")
                await client.close()
            }
        }
    }

    @Test func sendsFromOtherTasksAndServerInitiatedMessages() async throws {
        // The async API: a server that pushes messages of its own from a second task while
        // echoing; all arrive, each task's in order.
        var router = WebSocketRouter()
        router.webSocket("/push", WebSocketEndpoint(configuration: quietConfiguration()) { ws in
            let pusher = Task {
                for i in 0..<50 { try await ws.send(text: "push \(i)") }
            }
            for try await message in ws.messages { try await ws.send(message) }
            try await pusher.value
        })
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/push")
            for i in 0..<50 { try await client.sendText("echo \(i)") }
            var pushes: [String] = []
            var echoes: [String] = []
            while pushes.count < 50 || echoes.count < 50 {
                guard case .text(let text) = try await client.nextMessage() else {
                    Issue.record("unexpected message")
                    return
                }
                if text.hasPrefix("push") { pushes.append(text) } else { echoes.append(text) }
            }
            #expect(pushes == (0..<50).map { "push \($0)" })
            #expect(echoes == (0..<50).map { "echo \($0)" })
            await client.close()
        }
    }
}
