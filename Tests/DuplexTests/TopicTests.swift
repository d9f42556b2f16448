import Duplex
import DuplexCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// Topics: subscribe, unsubscribe, publish from anywhere, fan-out across event loops, slow
/// subscribers, the transition hook.
@Suite struct TopicTests {
    /// A room: a connection to `/room` subscribes to `topic`; each message it sends goes to every
    /// subscriber, itself included (publish to the others, send to itself).
    static func roomEndpoint(_ configuration: WebSocketConfiguration = quietConfiguration(), topic: String = "room",
                             closes: Mailbox<CloseFrame>? = nil, opened: Counter? = nil) -> WebSocketEndpoint {
        WebSocketEndpoint(configuration: configuration, callbacks: WebSocketCallbacks(
            onOpen: { ws in
                _ = try? ws.subscribe(to: topic)
                opened?.increment()
            },
            onMessage: { ws, data in
                _ = try? ws.publish(data, to: topic)
                ws.send(data)
            },
            onClose: { _, frame in closes?.put(frame) }
        ))
    }

    /// An async endpoint that subscribes to the topic named in its first message, says "ok",
    /// then relays every further message to that topic.
    static let asyncSubscriber = WebSocketEndpoint(configuration: quietConfiguration()) { ws in
        var topic: String?
        for try await message in ws.messages {
            guard case .text(let text) = message else { continue }
            if let topic {
                try await ws.publish(.text(text), to: topic)
            } else {
                topic = text
                try await ws.subscribe(to: text)
                try await ws.send(text: "ok \(await ws.topics.sorted())")
            }
        }
    }

    @Test func everySubscriberGetsEveryMessageInOrderAcrossLoops() async throws {
        let opened = Counter()
        var router = WebSocketRouter()
        router.webSocket("/room", Self.roomEndpoint(opened: opened))
        // Two event loops: subscribers land on both, so the fan-out crosses loops.
        try await withServer(router) { port, server in
            var clients: [TestClient] = []
            for _ in 0..<20 { clients.append(try await TestClient.webSocket(port: port, path: "/room")) }
            try await eventually("every subscriber to be registered") { server.subscriberCount(of: "room") == 20 }
            #expect(server.topics == ["room": 20])
            let count = 50
            for i in 0..<count {
                #expect(server.publish(.text("m\(i)"), to: "room") == 20)
            }
            for client in clients {
                for i in 0..<count {
                    #expect(try await client.nextMessage() == .text("m\(i)"))
                }
            }
            // A client's message reaches every subscriber, the sender included (it sends to itself).
            try await clients[3].sendText("from three")
            for client in clients {
                #expect(try await client.nextMessage() == .text("from three"))
            }
            for client in clients { await client.close() }
            try await eventually("closing to unsubscribe everywhere") { server.subscriberCount(of: "room") == 0 }
            #expect(server.topics.isEmpty)
        }
    }

    @Test func publishFromATaskAnotherLoopAndTheEventLoopKeepsEachPublishersOrder() async throws {
        var router = WebSocketRouter()
        router.webSocket("/room", Self.roomEndpoint())
        let otherLoop = MultiThreadedEventLoopGroup.singleton.next()  // none of the server's loops
        try await withServer(router) { port, server in
            let client = try await TestClient.webSocket(port: port, path: "/room")
            try await eventually("the subscription") { server.subscriberCount(of: "room") == 1 }
            // From a loop that is none of the server's, synchronously, several in one go.
            try await otherLoop.submit {
                for i in 0..<10 { server.publish(.text("loop \(i)"), to: "room") }
            }.get()
            for i in 0..<10 { #expect(try await client.nextMessage() == .text("loop \(i)")) }
            // From a task on Swift's global executor, binary this time.
            await Task.detached {
                for i in 0..<10 { server.publish(.binary(ByteBuffer(bytes: [UInt8(i)])), to: "room") }
            }.value
            for i in 0..<10 { #expect(try await client.nextMessage() == .binary([UInt8(i)])) }
            // Synchronously on each of the server's event loops (one of them is the subscriber's).
            for loop in [testLoop.next(), testLoop.next()] {
                #expect(try await loop.submit { server.publish(.text("on a server loop"), to: "room") }.get() == 1)
                #expect(try await client.nextMessage() == .text("on a server loop"))
            }
            #expect(server.publish(.text("nobody"), to: "empty") == 0)
        }
    }

    @Test func asyncAPISubscribesPublishesAndSkipsTheSender() async throws {
        var router = WebSocketRouter()
        router.webSocket("/sub", Self.asyncSubscriber)
        try await withServer(router) { port, server in
            let a = try await TestClient.webSocket(port: port, path: "/sub")
            let b = try await TestClient.webSocket(port: port, path: "/sub")
            try await a.sendText("news")
            #expect(try await a.nextMessage() == .text("ok [\"news\"]"))
            try await b.sendText("news")
            #expect(try await b.nextMessage() == .text("ok [\"news\"]"))
            #expect(server.subscriberCount(of: "news") == 2)
            // `ws.publish` goes to the others only.
            try await a.sendText("from a")
            #expect(try await b.nextMessage() == .text("from a"))
            server.publish(.text("from the server"), to: "news")
            #expect(try await a.nextMessage() == .text("from the server"))
            #expect(try await b.nextMessage() == .text("from the server"))
        }
    }

    @Test func subscribeAndUnsubscribeFromTheCallbacks() async throws {
        let results = Mailbox<String>()
        var router = WebSocketRouter()
        router.webSocket("/toggle", WebSocketEndpoint(configuration: quietConfiguration(), callbacks: WebSocketCallbacks(
            onMessage: { ws, data in
                let topic = data.text ?? ""
                if ws.topics.contains(topic) {
                    results.put("unsubscribe \(ws.unsubscribe(from: topic)) \(ws.unsubscribe(from: topic))")
                } else {
                    let first = (try? ws.subscribe(to: topic)) ?? false
                    let again = (try? ws.subscribe(to: topic)) ?? false
                    results.put("subscribe \(first) \(again) \(ws.topics.sorted())")
                }
            }
        )))
        try await withServer(router) { port, server in
            let client = try await TestClient.webSocket(port: port, path: "/toggle")
            try await client.sendText("t1")
            #expect(try await results.take() == "subscribe true false [\"t1\"]")
            #expect(server.subscriberCount(of: "t1") == 1)
            server.publish(.text("to t1"), to: "t1")
            #expect(try await client.nextMessage() == .text("to t1"))
            try await client.sendText("t1")
            #expect(try await results.take() == "unsubscribe true false")
            #expect(server.subscriberCount(of: "t1") == 0)
            #expect(server.publish(.text("gone"), to: "t1") == 0)
            // Nothing arrives once unsubscribed: the next message is the answer to this ping.
            try await client.sendPing([7])
            #expect(try await client.next() == .pong([7]))
        }
    }

    @Test func transitionsReportTheFirstAndTheLastSubscriberInOrder() async throws {
        let transitions = Mailbox<TopicTransition>()
        var router = WebSocketRouter()
        router.webSocket("/room", Self.roomEndpoint())
        try await withServer(router) { port, server in
            server.onTopicTransition { transitions.put($0) }
            let a = try await TestClient.webSocket(port: port, path: "/room")
            #expect(try await transitions.take() == .firstSubscriber(topic: "room"))
            let b = try await TestClient.webSocket(port: port, path: "/room")
            try await eventually("two subscribers") { server.subscriberCount(of: "room") == 2 }
            await a.close()
            try await eventually("one subscriber") { server.subscriberCount(of: "room") == 1 }
            #expect(transitions.pending.isEmpty)
            await b.close()
            #expect(try await transitions.take() == .lastSubscriberLeft(topic: "room"))
            let c = try await TestClient.webSocket(port: port, path: "/room")
            #expect(try await transitions.take() == .firstSubscriber(topic: "room"))
            await c.close()
            #expect(try await transitions.take() == .lastSubscriberLeft(topic: "room"))
        }
    }

    @Test(arguments: [WebSocketConfiguration.BackpressurePolicy.close(.tryAgainLater), .drop])
    func aSlowSubscriberMeetsItsPolicyWhileTheOthersGetEverything(policy: WebSocketConfiguration.BackpressurePolicy) async throws {
        let closes = Mailbox<CloseFrame>()
        let configuration = quietConfiguration(outboundHighWaterMark: 16 << 10, outboundLowWaterMark: 4 << 10,
                                               outboundHardLimit: 64 << 10, backpressurePolicy: policy)
        var router = WebSocketRouter()
        router.webSocket("/room", Self.roomEndpoint(configuration, closes: closes))
        try await withServer(router) { port, server in
            let slow = try await TestClient.webSocket(port: port, path: "/room", receiveBuffer: 8 << 10)
            try await slow.setReading(false)
            var fast: [TestClient] = []
            for _ in 0..<3 { fast.append(try await TestClient.webSocket(port: port, path: "/room")) }
            try await eventually("four subscribers") { server.subscriberCount(of: "room") == 4 }
            // 6.4 MB published: over the slow subscriber's 64 KiB limit plus what the kernel holds
            // for it (a loopback socket's send buffer grows to 4 MiB).
            let payload = String(repeating: "x", count: 4000)
            let count = 1600
            let delivered = Counter()
            let readers = fast.map { client in
                Task {
                    for i in 0..<count {
                        guard try await client.nextMessage() == .text("\(i) \(payload)") else { return false }
                        delivered.increment()
                    }
                    return true
                }
            }
            // Published in batches that the fast subscribers take in before the next one: they
            // never come near their limit, the one that does not read passes it.
            let batch = 16
            for start in stride(from: 0, to: count, by: batch) {
                for i in start..<(start + batch) { server.publish(.text("\(i) \(payload)"), to: "room") }
                try await eventually("the fast subscribers to take the batch") { delivered.current >= 3 * (start + batch) }
            }
            for reader in readers { #expect(try await reader.value) }
            switch policy {
            case .close(let code):
                // Closed by the policy on the server (the close frame waits behind what is buffered).
                try await slow.setReading(true)
                #expect(try await slow.nextClose(skippingData: true).code == code.rawValue)
                let closed = try await closes.take()
                #expect(closed.code == code || closed.code == .abnormalClosure)
            case .drop:
                // Still subscribed and open: once it reads again it gets messages, with gaps.
                #expect(server.subscriberCount(of: "room") == 4)
                try await slow.setReading(true)
                var received = 0
                // Reads until nothing more comes for a second (what was buffered before the drops).
                while let event = try? await slow.next(timeout: .seconds(1)), case .text = event {
                    received += 1
                }
                #expect(received > 0 && received < count)
            }
        }
    }

    @Test func clientConnectionsHaveNoTopics() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", callbackEcho(configuration: quietConfiguration()))
        try await withServer(router) { port, _ in
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo", group: testLoop, logger: testLogger())
            await #expect(throws: WebSocketError.topicsUnavailable) { try await ws.subscribe(to: "t") }
            _ = try await ws.close()
            await #expect(throws: WebSocketError.self) { try await ws.publish(.text("x"), to: "t") }
        }
    }

    /// Plain subscribers share the plain frame, subscribers with permessage-deflate without
    /// context takeover share one compressed frame, those with context takeover are compressed
    /// one by one: every one of them decodes every message.
    @Test func compressedAndPlainSubscribersOfOneTopicAllDecodeEveryMessage() async throws {
        func endpoint(_ extensions: [any ServerExtensionNegotiator]) -> WebSocketEndpoint {
            WebSocketEndpoint(configuration: quietConfiguration(), extensions: extensions, callbacks: WebSocketCallbacks(
                onOpen: { ws in _ = try? ws.subscribe(to: "mixed") },
                onMessage: { _, _ in }
            ))
        }
        var router = WebSocketRouter()
        router.webSocket("/plain", endpoint([]))
        router.webSocket("/shared", endpoint([PerMessageDeflate.ServerNegotiator(configuration: PerMessageDeflateConfiguration(noContextTakeover: true))]))
        router.webSocket("/own", endpoint([PerMessageDeflate.ServerNegotiator()]))
        try await withServer(router) { port, server in
            var sockets: [(String, WebSocketConnection)] = []
            for path in ["/plain", "/shared", "/shared", "/shared", "/own", "/own"] {
                let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)\(path)", group: testLoop, logger: testLogger())
                sockets.append((path, ws))
            }
            try await eventually("six subscribers") { server.subscriberCount(of: "mixed") == 6 }
            let messages: [WebSocketMessage] = (0..<30).map { i in
                i % 3 == 2 ? .binary(ByteBuffer(bytes: patternBytes(3000 + i, seed: UInt8(i)))) : .text(String(repeating: "compressible \(i) ", count: 40 + i))
            }
            for message in messages { #expect(server.publish(message, to: "mixed") == 6) }
            for (path, ws) in sockets {
                var iterator = ws.messages.makeAsyncIterator()
                for (index, message) in messages.enumerated() {
                    let received = try await iterator.next()
                    #expect(received == message, "\(path) message \(index)")
                }
                _ = try await ws.close()
            }
        }
    }

    /// The frame one connection encodes for sharing is the frame another with the same key
    /// would write, and a client decodes it; connections with context takeover have no key.
    @Test func aSharedCompressedFrameIsTheSameForEveryConnectionWithItsKey() throws {
        func serverConnection(noContextTakeover: Bool) -> Connection {
            let deflate = PerMessageDeflate(configuration: PerMessageDeflateConfiguration(noContextTakeover: noContextTakeover),
                                            localWindowBits: 15, localNoContextTakeover: noContextTakeover,
                                            peerWindowBits: 15, peerNoContextTakeover: false)
            return Connection(role: .server, extensions: [deflate])
        }
        var a = serverConnection(noContextTakeover: true)
        var b = serverConnection(noContextTakeover: true)
        let takeover = serverConnection(noContextTakeover: false)
        #expect(a.sharedEncodingKey != nil && a.sharedEncodingKey == b.sharedEncodingKey)
        #expect(takeover.sharedEncodingKey == nil)
        #expect(Connection(role: .server).sharedEncodingKey == nil)
        let text = ByteBuffer(string: String(repeating: "a message for many subscribers ", count: 20))
        for _ in 0..<3 {
            let frameA = try a.encodeForSharing(.text, payload: text)
            let frameB = try b.encodeForSharing(.text, payload: text)
            #expect(frameA == frameB)
            #expect(frameA.readableBytes < text.readableBytes)
            let inflate = PerMessageDeflate(configuration: PerMessageDeflateConfiguration(), localWindowBits: 15,
                                            localNoContextTakeover: false, peerWindowBits: 15, peerNoContextTakeover: true)
            var client = Connection(role: .client, extensions: [inflate])
            client.receive(frameA)
            #expect(client.nextEvent() == .text(text))
        }
    }
}
