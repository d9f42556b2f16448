import Duplex
@testable import DuplexRedis
import Foundation
import NIOCore
import Testing

/// Topics across two `duplex serve` instances through a `redis-server` that the test starts.
@Suite(.timeLimit(.minutes(1))) struct RedisBrokerTests {
    @Test func whatIsPublishedOnBArrivesOnAInOrder() async throws {
        let redis = try await SharedBrokers.shared.redisServer()
        try await withTwoInstances({ try RedisBroker(url: redis.url) }) { a, b in
            try await CrossInstanceChecks.publishedOnBArrivesOnA(a, b)
        }
    }

    @Test func deliveryResumesAfterRedisRestarts() async throws {
        let redis = try await RedisProcess.start()  // its own: it is stopped and started again
        try await withTwoInstances({ try RedisBroker(url: redis.url) }) { a, b in
            try await CrossInstanceChecks.deliveryResumesAfterABrokerRestart(a, b, broker: redis)
        }
        try await redis.stop()
    }

    @Test func anInstanceSubscribesOnlyToTopicsWithLocalSubscribers() async throws {
        let redis = try await SharedBrokers.shared.redisServer()
        let probe = try await RedisConnection.connect(host: "127.0.0.1", port: redis.port)
        let prefix = CrossInstanceChecks.uniqueTopic("subscriptions")
        let topic = "\(prefix).lobby"
        try await withTwoInstances({ try RedisBroker(url: redis.url) }) { a, _ in
            func channels() async throws -> [String] {
                let answer = try await probe.send(RedisCommand(["PUBSUB", "CHANNELS", "duplex:\(prefix)*"]))
                guard case .array(let names?) = answer else { return [] }
                return names.compactMap(\.string).sorted()
            }
            #expect(try await channels() == [])
            // The shared redis-server has other tests' channels: only this test's topics are looked at.
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(a.port)/topics/\(topic)")
            try await eventually("the channel to be subscribed") { try await channels() == ["duplex:\(topic)"] }
            _ = try await ws.close()
            try await eventually("the channel to be unsubscribed") { try await channels() == [] }
        }
        await probe.close()
    }

    @Test func aDatabaseIndexAndAPasswordAreUsed() async throws {
        let redis = try await RedisProcess.start()  // its own: the test sets a password
        let admin = try await RedisConnection.connect(host: "127.0.0.1", port: redis.port)
        try await admin.send(RedisCommand(["CONFIG", "SET", "requirepass", "s3cret"]))
        await admin.close()
        try await withTwoInstances({ try RedisBroker(url: "redis://:s3cret@127.0.0.1:\(redis.port)/3") }) { a, b in
            #expect(a.fanout.broker.redactedDescription == "redis://:***@127.0.0.1:\(redis.port)/3")
            let subscriber = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(a.port)/topics/room")
            let onA = MessageCollector(subscriber)
            try await waitUntilSubscribedAcross(onA, publisher: b)
            b.server.publish(.text("authenticated"), to: "room")
            #expect(try await onA.wait(for: 1) == [.text("authenticated")])
            _ = try await subscriber.close()
        }
        let wrong = try RedisBroker(url: "redis://:wrong-pass@127.0.0.1:\(redis.port)")
        await #expect {
            _ = try await wrong.connect(onMessage: { _ in }, onClose: { _ in })
        } throws: { error in
            "\(error)".contains("refused") && !"\(error)".contains("wrong-pass")
        }
        try await redis.stop()
    }

    @Test func respDecoderRefusesHostileInput() throws {
        let decoder = RESPDecoder(maxBulkLength: 1024, maxArrayCount: 16, maxDepth: 4)
        func decode(_ text: String) throws -> RESPValue? {
            var copy = decoder
            var buffer = ByteBuffer(string: text)
            return try copy.decode(buffer: &buffer)
        }
        #expect(try decode("+OK\r\n") == .simpleString("OK"))
        #expect(try decode("*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$-1\r\n")
                == .array([.bulkString(ByteBuffer(string: "message")), .bulkString(ByteBuffer(string: "c")), .bulkString(nil)]))
        #expect(try decode("$5\r\nhel") == nil)  // incomplete: waits
        #expect(throws: RESPDecodingError.self) { try decode("$999999999\r\n") }
        #expect(throws: RESPDecodingError.self) { try decode("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n") }
        #expect(throws: RESPDecodingError.self) { try decode("?what\r\n") }
        #expect(throws: RESPDecodingError.self) { try decode(":12x\r\n") }
        #expect(try decode(":-12\r\n") == .integer(-12))
        // Digits and a leading '-' only: Int("+5") would read 5.
        #expect(throws: RESPDecodingError.self) { try decode(":+5\r\n") }
        #expect(throws: RESPDecodingError.self) { try decode("$+3\r\nabc\r\n") }
        #expect(throws: RESPDecodingError.self) { try decode("*+1\r\n:1\r\n") }
        #expect(throws: RESPDecodingError.self) { try decode(":-\r\n") }
    }
}
