import Duplex
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// Topics across server instances through PostgreSQL LISTEN/NOTIFY:
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (or `postgresql://`; port 5432 by default).
///
/// A session is two connections made with postgres-nio: a dedicated one that LISTENs (one channel
/// per topic with local subscribers; see ``PostgresWire``) and one that publishes and fetches.
/// NOTIFY payloads are text of at most 8,000 bytes: a text message that fits in
/// ``Configuration/maxNotifyBytes`` goes inline; a larger one, a binary one, or one with a NUL
/// byte goes into the table ``Configuration/table`` (`bytea`) and the notification carries the
/// row's id (one statement: the insert and its `pg_notify`). Rows older than
/// ``Configuration/rowTTL`` are deleted (at most every half TTL, on the session's ping). The table
/// and its index are made at connect if missing.
///
/// postgres-nio buffers a channel's notifications without bound: each topic's are taken at once
/// into a queue of at most ``Configuration/maxPendingNotifications`` (more are dropped: at-most-once)
/// and handled in order from there (a row reference waits for its fetch).
public struct PostgresBroker: PubSubBroker {
    /// Settings of a ``PostgresBroker``.
    public struct Configuration: Sendable {
        /// Channel name prefix (`prefix:topic`). Default: `duplex`.
        public var channelPrefix: String
        /// The table of large and binary messages. Default: `duplex_broker_messages`.
        public var table: String
        /// NOTIFY payloads up to this many bytes go inline (PostgreSQL's limit is 8,000). Default: 7,900.
        public var maxNotifyBytes: Int
        /// Rows older than this are deleted. Default: 30 s.
        public var rowTTL: TimeAmount
        /// Notifications of one topic held while they wait to be handled. Default: 10,000.
        public var maxPendingNotifications: Int
        /// How long connecting and setting up may take. Default: 5 s.
        public var connectTimeout: TimeAmount

        public init(channelPrefix: String = "duplex", table: String = "duplex_broker_messages", maxNotifyBytes: Int = 7_900,
                    rowTTL: TimeAmount = .seconds(30), maxPendingNotifications: Int = 10_000,
                    connectTimeout: TimeAmount = .seconds(5)) {
            precondition((100...7_999).contains(maxNotifyBytes), "maxNotifyBytes must be within 100...7999")
            precondition(table.utf8.allSatisfy { $0 == UInt8(ascii: "_") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) },
                         "the table name is lowercase letters and _")
            precondition(maxPendingNotifications > 0 && rowTTL > .zero, "limits must be positive")
            self.channelPrefix = channelPrefix
            self.table = table
            self.maxNotifyBytes = maxNotifyBytes
            self.rowTTL = rowTTL
            self.maxPendingNotifications = maxPendingNotifications
            self.connectTimeout = connectTimeout
        }
    }

    /// The server's URL.
    public let url: BrokerURL
    public let configuration: Configuration
    private let logger: Logger

    /// A broker at `url`.
    /// - Throws: ``BrokerError`` for a URL that is not `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    public init(url: String, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "duplex.broker.postgres")) throws {
        let parsed = try BrokerURL(url, schemes: ["postgres", "postgresql"], defaultPort: 5432)
        guard parsed.user != nil else { throw BrokerError("a postgres:// broker URL names its user: postgres://USER[:PASSWORD]@HOST[:PORT]/DB") }
        self.url = parsed
        self.configuration = configuration
        self.logger = logger
    }

    public var kind: String { "postgres" }
    public var redactedDescription: String { url.description }

    public func connect(onMessage: @escaping @Sendable (BrokerMessage) -> Void,
                        onClose: @escaping @Sendable (any Error) -> Void) async throws -> any PubSubBrokerSession {
        let listener = try await open(id: 1)
        var opened: PostgresConnection?
        do {
            let publisher = try await open(id: 2)
            opened = publisher
            try await withBrokerTimeout(configuration.connectTimeout) { [self] in try await createTable(on: publisher) }
        } catch {
            // postgres-nio asserts that every connection is closed before it is released.
            try? await opened?.close()
            try? await listener.close()
            if let error = error as? BrokerError { throw BrokerError("\(redactedDescription): setting up the table: \(error)") }
            if let error = error as? PSQLError { throw BrokerError("\(redactedDescription): setting up the table: \(Self.describe(error))") }
            throw BrokerError("\(redactedDescription): setting up the table: \(error)")
        }
        guard let publisher = opened else { throw BrokerError("\(redactedDescription): no connection") }
        return PostgresBrokerSession(broker: self, listener: listener, publisher: publisher, logger: logger,
                                     onMessage: onMessage, onClose: onClose)
    }

    private func open(id: Int) async throws -> PostgresConnection {
        let settings = PostgresConnection.Configuration(host: url.host, port: url.port, username: url.user ?? "",
                                                        password: url.password, database: url.path.isEmpty ? nil : url.path,
                                                        tls: .disable)
        var settingsWithTimeout = settings
        settingsWithTimeout.options.connectTimeout = configuration.connectTimeout
        do {
            let configured = settingsWithTimeout
            return try await withBrokerTimeout(configuration.connectTimeout) { [logger] in
                try await PostgresConnection.connect(configuration: configured, id: id, logger: logger)
            }
        } catch let error as BrokerError {
            throw BrokerError("cannot connect to \(redactedDescription): \(error)")
        } catch let error as PSQLError {
            throw BrokerError("cannot connect to \(redactedDescription): \(Self.describe(error))")
        } catch {
            throw BrokerError("cannot connect to \(redactedDescription): \(error)")
        }
    }

    /// A PSQLError's code and the server's message, without the query or its binds.
    static func describe(_ error: PSQLError) -> String {
        var parts = ["\(error.code)"]
        if let message = error.serverInfo?[.message] { parts.append(message) }
        if let underlying = error.underlying { parts.append("\(underlying)") }
        return parts.joined(separator: ": ")
    }

    private func createTable(on connection: PostgresConnection) async throws {
        let table = configuration.table
        let statements = [
            "CREATE TABLE IF NOT EXISTS \(table) (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), is_text boolean NOT NULL, payload bytea NOT NULL)",
            "CREATE INDEX IF NOT EXISTS \(table)_created_at ON \(table) (created_at)",
        ]
        for statement in statements {
            do {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            } catch {
                // Two instances creating it at once: one wins, the other sees a duplicate; once more settles it.
                try await Task.sleep(for: .milliseconds(100))
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }

    func channel(for topic: String) -> String { PostgresWire.channel(for: topic, prefix: configuration.channelPrefix) }
}
