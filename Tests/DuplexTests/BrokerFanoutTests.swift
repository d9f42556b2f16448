import Duplex
import NIOCore
import Testing

/// `BrokerFanout` over `InProcessBroker`: two servers in one process share their topics the way
/// instances on several machines do through Redis or PostgreSQL.
@Suite struct BrokerFanoutTests {
    /// How long a state change may take to show: the whole `swift test` runs its tests at once on
    /// two cores, shared with other work, and 5 s was seen to pass before a fan-out noticed.
    static let patience: Duration = .seconds(20)

    /// Two servers with `/room` endpoints, each fanned out through `broker`; `body` gets their ports.
    static func withTwoServers(
        broker: InProcessBroker,
        configuration: BrokerFanout.Configuration = BrokerFanout.Configuration(),
        _ body: (_ a: (port: Int, server: WebSocketServer, fanout: BrokerFanout),
                 _ b: (port: Int, server: WebSocketServer, fanout: BrokerFanout)) async throws -> Void
    ) async throws {
        var router = WebSocketRouter()
        router.webSocket("/room", TopicTests.roomEndpoint())
        try await withServer(router) { portA, serverA in
            try await withServer(router) { portB, serverB in
                let fanoutA = BrokerFanout(broker: broker, server: serverA, configuration: configuration, logger: testLogger())
                let fanoutB = BrokerFanout(broker: broker, server: serverB, configuration: configuration, logger: testLogger())
                try await fanoutA.start()
                try await fanoutB.start()
                let runs = [Task { try await fanoutA.run() }, Task { try await fanoutB.run() }]
                defer {
                    fanoutA.stop()
                    fanoutB.stop()
                }
                try await body((portA, serverA, fanoutA), (portB, serverB, fanoutB))
                fanoutA.stop()
                fanoutB.stop()
                for run in runs { try await run.value }
                #expect(fanoutA.state == .stopped)
            }
        }
    }

    @Test func subscribersOnOneServerGetWhatIsPublishedOnTheOtherInOrderWithoutEchoes() async throws {
        let broker = InProcessBroker()
        try await Self.withTwoServers(broker: broker) { a, b in
            let subscriber = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(a.port)/room")
            // The first local subscriber subscribes server A at the broker; B has none yet.
            try await eventually("A to subscribe at the broker", timeout: Self.patience) { broker.subscriberCount(of: "room") == 1 }
            let large = ByteBuffer(repeating: 0xA5, count: 9000)
            for i in 0..<100 { b.server.publish(.text("m\(i)"), to: "room") }
            b.server.publish(.binary(large), to: "room")
            var messages = subscriber.messages.makeAsyncIterator()
            for i in 0..<100 { #expect(try await messages.next() == .text("m\(i)")) }
            #expect(try await messages.next() == .binary(large))

            // A publisher on A with subscribers on both: each gets it once (A's own copy does not come back).
            let other = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(b.port)/room")
            try await eventually("B to subscribe at the broker", timeout: Self.patience) { broker.subscriberCount(of: "room") == 2 }
            try await subscriber.send(text: "from A")
            #expect(try await messages.next() == .text("from A"))  // the room endpoint's own echo
            var otherMessages = other.messages.makeAsyncIterator()
            #expect(try await otherMessages.next() == .text("from A"))
            a.server.publish(.text("after"), to: "room")
            #expect(try await messages.next() == .text("after"))
            #expect(try await otherMessages.next() == .text("after"))
            _ = try await other.close()
            _ = try await subscriber.close()
            // The last subscribers left: both servers unsubscribed at the broker.
            try await eventually("both to unsubscribe at the broker", timeout: Self.patience) { broker.subscriberCount(of: "room") == 0 }
        }
    }

    @Test func whileTheBrokerIsAwayLocalDeliveryGoesOnThenTopicsAreSubscribedAgain() async throws {
        let broker = InProcessBroker()
        let configuration = BrokerFanout.Configuration(
            reconnect: ReconnectPolicy(initialDelay: .milliseconds(20), maxDelay: .milliseconds(100)))
        try await Self.withTwoServers(broker: broker, configuration: configuration) { a, b in
            let subscriber = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(a.port)/room")
            try await eventually("A to subscribe at the broker", timeout: Self.patience) { broker.subscriberCount(of: "room") == 1 }
            var messages = subscriber.messages.makeAsyncIterator()

            broker.setAvailable(false)
            try await eventually("A to notice", timeout: Self.patience) { a.fanout.state != .connected }
            if case .reconnecting = a.fanout.state {} else { Issue.record("state \(a.fanout.state)") }
            // Local delivery goes on; across instances, what is published now is lost (at-most-once).
            #expect(a.server.publish(.text("local"), to: "room") == 1)
            #expect(try await messages.next() == .text("local"))
            b.server.publish(.text("lost"), to: "room")

            broker.setAvailable(true)
            try await eventually("both to reconnect", timeout: Self.patience) { a.fanout.state == .connected && b.fanout.state == .connected }
            try await eventually("A to subscribe again", timeout: Self.patience) { broker.subscriberCount(of: "room") == 1 }
            b.server.publish(.text("back"), to: "room")
            #expect(try await messages.next() == .text("back"))
            _ = try await subscriber.close()
        }
    }

    @Test func aBrokerThatIsNotThereFailsTheStart() async throws {
        let broker = InProcessBroker()
        broker.setAvailable(false)
        var router = WebSocketRouter()
        router.webSocket("/room", TopicTests.roomEndpoint())
        try await withServer(router) { _, server in
            let fanout = BrokerFanout(broker: broker, server: server, logger: testLogger())
            await #expect(throws: BrokerError.self) { try await fanout.start() }
            #expect(fanout.state == .idle)
        }
    }

    @Test func envelopesKeepKindOriginAndPayloadAndRefuseStrangers() throws {
        let node = BrokerNodeID()
        for message in [BrokerMessage(topic: "t", origin: node, isText: true, payload: ByteBuffer(string: "héllo")),
                        BrokerMessage(topic: "t", origin: node, isText: false, payload: ByteBuffer(bytes: [0, 0xFF, 7]))] {
            let decoded = BrokerEnvelope.decode(topic: "t", BrokerEnvelope.encode(message))
            #expect(decoded == message)
        }
        #expect(BrokerEnvelope.decode(topic: "t", ByteBuffer(string: "hello")) == nil)
        var invalidText = ByteBuffer(bytes: [1, 1] + node.bytes)
        invalidText.writeBytes([0xC3])
        #expect(BrokerEnvelope.decode(topic: "t", invalidText) == nil)
        #expect(BrokerNodeID(hex: node.description) == node)
        #expect(BrokerNodeID(hex: "xyz") == nil)
    }

    @Test(arguments: [
        ("redis://h", "redis://h:6379"), ("redis://:pw@h:7000/3", "redis://:***@h:7000/3"),
        ("REDIS://user:p%40ss@[::1]/1", "redis://user:***@[::1]:6379/1"),
    ])
    func brokerURLsHideTheirPassword(url: String, shown: String) throws {
        let parsed = try BrokerURL(url, schemes: ["redis"], defaultPort: 6379)
        #expect(parsed.description == shown)
        if url.contains("p%40ss") { #expect(parsed.password == "p@ss") }
    }

    @Test(arguments: ["h:6379", "http://h", "redis://", "redis://h:0", "redis://h?x=1", "redis://:secret@h:99999"])
    func badBrokerURLsSayWhatIsWrongWithoutThePassword(url: String) {
        do {
            _ = try BrokerURL(url, schemes: ["redis"], defaultPort: 6379)
            Issue.record("\(url) was accepted")
        } catch {
            #expect(!error.message.isEmpty)
            #expect(!error.message.contains("secret"))
        }
    }

    /// A text envelope whose payload is not UTF-8 is not taken from the broker; the same bytes
    /// as binary are.
    @Test func aTextEnvelopeMustBeUTF8() throws {
        let bad = ByteBuffer(bytes: [0x61, 0xC3, 0x28])
        let text = BrokerEnvelope.encode(BrokerMessage(topic: "t", origin: BrokerNodeID(), isText: true, payload: bad))
        #expect(BrokerEnvelope.decode(topic: "t", text) == nil)
        let binary = BrokerEnvelope.encode(BrokerMessage(topic: "t", origin: BrokerNodeID(), isText: false, payload: bad))
        #expect(BrokerEnvelope.decode(topic: "t", binary)?.payload == bad)
        let good = BrokerMessage(topic: "t", origin: BrokerNodeID(), isText: true, payload: ByteBuffer(string: "κόσμε"))
        #expect(BrokerEnvelope.decode(topic: "t", BrokerEnvelope.encode(good)) == good)
    }
}
