import Duplex
import Foundation
import NIOCore
import Testing
@testable import DuplexPostgres

/// Topics across two `duplex serve` instances through a PostgreSQL server that the test starts.
@Suite(.timeLimit(.minutes(1))) struct PostgresBrokerTests {
    @Test func whatIsPublishedOnBArrivesOnAInOrder() async throws {
        let postgres = try await SharedBrokers.shared.postgresServer()
        try await withTwoInstances({ try PostgresBroker(url: postgres.url, configuration: .init(connectTimeout: .seconds(15))) }) { a, b in
            try await CrossInstanceChecks.publishedOnBArrivesOnA(a, b)
        }
    }

    @Test func deliveryResumesAfterPostgresRestarts() async throws {
        let postgres = try await PostgresProcess.start()  // its own: it is stopped and started again
        try await withTwoInstances({ try PostgresBroker(url: postgres.url, configuration: .init(connectTimeout: .seconds(15))) }) { a, b in
            try await CrossInstanceChecks.deliveryResumesAfterABrokerRestart(a, b, broker: postgres)
        }
        try await postgres.stop()
    }

    @Test func anUnreachableOrWrongServerIsAClearError() async throws {
        let port = try await BrokerBinaries.freePort()
        let unreachable = try PostgresBroker(url: "postgres://app:hunter2@127.0.0.1:\(port)/app")
        await #expect {
            _ = try await unreachable.connect(onMessage: { _ in }, onClose: { _ in })
        } throws: { error in
            "\(error)".contains("cannot connect to postgres://app:***@127.0.0.1:\(port)/app") && !"\(error)".contains("hunter2")
        }
        #expect(throws: BrokerError.self) { try PostgresBroker(url: "postgres://127.0.0.1/db") }  // no user
    }

    @Test func largeAndBinaryMessagesGoThroughTheTableAndExpiredRowsAreDeleted() async throws {
        let postgres = try await SharedBrokers.shared.postgresServer()
        // A table of its own: the row counts below are this test's rows only.
        let broker = try PostgresBroker(url: postgres.url, configuration: .init(table: "duplex_test_large_rows", rowTTL: .milliseconds(300),
                                                                                 connectTimeout: .seconds(15)))
        let received = ReceivedMessages()
        let session = try await broker.connect(onMessage: { received.append($0) }, onClose: { _ in })
        let topic = CrossInstanceChecks.uniqueTopic("big")
        try await session.subscribe(to: [topic])
        let node = BrokerNodeID()
        let messages = [BrokerMessage(topic: topic, origin: node, isText: false, payload: CrossInstanceChecks.payload(20_000, seed: 9)),
                        BrokerMessage(topic: topic, origin: node, isText: true, payload: ByteBuffer(string: "small")),
                        BrokerMessage(topic: topic, origin: node, isText: true, payload: ByteBuffer(string: String(repeating: "y", count: 8_000)))]
        try await session.publish(messages)
        try await eventually("the three messages") { received.all.count == 3 }
        #expect(received.all == messages)
        let postgresSession = try #require(session as? PostgresBrokerSession)
        #expect(try await postgresSession.rowCount() == 2)  // the binary one and the large text; the small one went inline
        try await Task.sleep(for: .milliseconds(400))
        try await session.ping()  // deletes what is older than the TTL
        #expect(try await postgresSession.rowCount() == 0)
        await session.close()
    }

    @Test func wireFormatKeepsTopicOriginAndKind() throws {
        let node = BrokerNodeID()
        let text = BrokerMessage(topic: "chat.lobby", origin: node, isText: true, payload: ByteBuffer(string: "héllo"))
        let inline = try #require(PostgresWire.inlinePayload(text, limit: 7_900))
        #expect(PostgresWire.parse(inline) == .inline(text))
        let large = BrokerMessage(topic: "t", origin: node, isText: true, payload: ByteBuffer(string: String(repeating: "x", count: 7_900)))
        #expect(PostgresWire.inlinePayload(large, limit: 7_900) == nil)
        let binary = BrokerMessage(topic: "t", origin: node, isText: false, payload: ByteBuffer(bytes: [1]))
        #expect(PostgresWire.inlinePayload(binary, limit: 7_900) == nil)
        #expect(PostgresWire.parse(PostgresWire.referencePrefix(binary) + "42") == .reference(topic: "t", origin: node, row: 42))
        #expect(PostgresWire.parse("garbage") == nil)
        let long = String(repeating: "a", count: 100)
        #expect(PostgresWire.channel(for: long, prefix: "duplex").utf8.count <= 63)
        #expect(PostgresWire.channel(for: "bad\"name", prefix: "duplex").hasPrefix("duplex#"))
        #expect(PostgresWire.channel(for: "ok.name", prefix: "duplex") == "duplex:ok.name")
    }
}

/// Messages a session delivered, in order.
final class ReceivedMessages: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [BrokerMessage] = []
    func append(_ message: BrokerMessage) { lock.withLock { messages.append(message) } }
    var all: [BrokerMessage] { lock.withLock { messages } }
}
