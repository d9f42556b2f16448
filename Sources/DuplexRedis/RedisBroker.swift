import Duplex
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Topics across server instances through Redis publish/subscribe:
/// `redis://[[user]:password@]host[:port][/db]` (port 6379 by default).
///
/// A session is two connections: one subscribed (SUBSCRIBE / UNSUBSCRIBE, its messages pushed to
/// the fan-out in order) and one for PUBLISH and PING (pipelined). Each topic is the channel
/// ``Configuration/channelPrefix`` + topic; each message is a ``BrokerEnvelope`` (binary-safe,
/// any size up to ``Configuration/maxMessageSize``). With a password the connections send `AUTH`,
/// with a database index `SELECT` (Redis's publish/subscribe channels are server-wide whatever the
/// database: separate deployments that share a server by their prefix).
public struct RedisBroker: PubSubBroker {
    /// Settings of a ``RedisBroker``.
    public struct Configuration: Sendable {
        /// Prefix of every channel name. Default: `duplex:`.
        public var channelPrefix: String
        /// How long a connection may take to open. Default: 5 s.
        public var connectTimeout: TimeAmount
        /// How long `AUTH`, `SELECT`, `SUBSCRIBE` may take to be answered. Default: 5 s.
        public var commandTimeout: TimeAmount
        /// The largest message taken from Redis, in bytes (a larger one ends the session). Default: 64 MiB.
        public var maxMessageSize: Int

        public init(channelPrefix: String = "duplex:", connectTimeout: TimeAmount = .seconds(5),
                    commandTimeout: TimeAmount = .seconds(5), maxMessageSize: Int = 64 << 20) {
            precondition(maxMessageSize > 0, "maxMessageSize must be positive")
            self.channelPrefix = channelPrefix
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.maxMessageSize = maxMessageSize
        }
    }

    /// The server's URL.
    public let url: BrokerURL
    /// The database index of the URL's path (0 if none).
    public let database: Int
    public let configuration: Configuration
    private let group: any EventLoopGroup

    /// A broker at `url`.
    /// - Throws: ``BrokerError`` for a URL that is not `redis://host[:port][/db]`.
    public init(url: String, configuration: Configuration = Configuration(),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        let parsed = try BrokerURL(url, schemes: ["redis"], defaultPort: 6379)
        if parsed.path.isEmpty {
            database = 0
        } else {
            guard let index = Int(parsed.path), index >= 0 else {
                throw BrokerError("the path of a redis:// URL is a database index (a number), not '\(parsed.path)'")
            }
            database = index
        }
        self.url = parsed
        self.configuration = configuration
        self.group = group
    }

    public var kind: String { "redis" }
    public var redactedDescription: String { url.description }

    public func connect(onMessage: @escaping @Sendable (BrokerMessage) -> Void,
                        onClose: @escaping @Sendable (any Error) -> Void) async throws -> any PubSubBrokerSession {
        let prefix = configuration.channelPrefix
        let closed = OnceFlag()
        let reportClose: @Sendable (any Error) -> Void = { error in
            if closed.set() { onClose(BrokerError("\(redactedDescription): \(error)")) }
        }
        let subscriber = try await open(onPush: { channel, payload in
            let name = String(buffer: channel)
            guard name.hasPrefix(prefix), let message = BrokerEnvelope.decode(topic: String(name.dropFirst(prefix.count)), payload)
            else { return }
            onMessage(message)
        }, onClose: reportClose)
        let publisher: RedisConnection
        do {
            publisher = try await open(onPush: { _, _ in }, onClose: reportClose)
        } catch {
            await subscriber.close()
            throw error
        }
        return RedisBrokerSession(subscriber: subscriber, publisher: publisher, prefix: prefix, closed: closed)
    }

    /// A connection, authenticated and on the URL's database.
    private func open(onPush: @escaping @Sendable (ByteBuffer, ByteBuffer) -> Void,
                      onClose: @escaping @Sendable (any Error) -> Void) async throws -> RedisConnection {
        let connection: RedisConnection
        do {
            connection = try await RedisConnection.connect(
                host: url.host, port: url.port, group: group, connectTimeout: configuration.connectTimeout,
                maxBulkLength: configuration.maxMessageSize + BrokerEnvelope.headerSize, onPush: onPush, onClose: onClose
            )
        } catch {
            throw BrokerError("cannot connect to \(redactedDescription): \(error)")
        }
        var setup: [RedisCommand] = []
        if let password = url.password {
            setup.append(RedisCommand(url.user.map { ["AUTH", $0, password] } ?? ["AUTH", password]))
        }
        if database != 0 { setup.append(RedisCommand(["SELECT", String(database)])) }
        setup.append(RedisCommand(["PING"]))
        let commands = setup
        do {
            _ = try await withBrokerTimeout(configuration.commandTimeout) { try await connection.send(commands) }
        } catch {
            await connection.close()
            throw BrokerError("\(redactedDescription) refused the connection: \(error)")
        }
        return connection
    }
}

/// One session of a ``RedisBroker``: a subscribed connection and a publishing one.
struct RedisBrokerSession: PubSubBrokerSession {
    let subscriber: RedisConnection
    let publisher: RedisConnection
    let prefix: String
    let closed: OnceFlag

    func subscribe(to topics: [String]) async throws {
        // One command per channel: each is answered by exactly one array.
        _ = try await subscriber.send(topics.map { RedisCommand(["SUBSCRIBE", prefix + $0]) })
    }

    func unsubscribe(from topics: [String]) async throws {
        _ = try await subscriber.send(topics.map { RedisCommand(["UNSUBSCRIBE", prefix + $0]) })
    }

    func publish(_ messages: [BrokerMessage]) async throws {
        _ = try await publisher.send(messages.map { message in
            RedisCommand(["PUBLISH", prefix + message.topic], binary: [BrokerEnvelope.encode(message)])
        })
    }

    func ping() async throws {
        async let published = publisher.send(RedisCommand(["PING"]))
        async let subscribed = subscriber.send(RedisCommand(["PING"]))
        _ = try await (published, subscribed)
    }

    func close() async {
        _ = closed.set()
        await subscriber.close()
        await publisher.close()
    }
}

/// True the first time ``set()`` is called, false after.
final class OnceFlag: Sendable {
    private let done = NIOLockedValueBox(false)

    func set() -> Bool {
        done.withLockedValue { done in
            defer { done = true }
            return !done
        }
    }
}
