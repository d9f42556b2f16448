import Duplex
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO

/// One session of a ``PostgresBroker``: a listening connection and a publishing one.
final class PostgresBrokerSession: PubSubBrokerSession, Sendable {
    private let broker: PostgresBroker
    private let listener: PostgresConnection
    private let publisher: PostgresConnection
    private let logger: Logger
    private let onMessage: @Sendable (BrokerMessage) -> Void
    private let state = NIOLockedValueBox(State())

    private struct State {
        var topics: [String: Task<Void, Never>] = [:]
        var closing = false
        var closed = false
        var lastCleanup: NIODeadline = .now()
    }

    init(broker: PostgresBroker, listener: PostgresConnection, publisher: PostgresConnection, logger: Logger,
         onMessage: @escaping @Sendable (BrokerMessage) -> Void, onClose: @escaping @Sendable (any Error) -> Void) {
        self.broker = broker
        self.listener = listener
        self.publisher = publisher
        self.logger = logger
        self.onMessage = onMessage
        let description = broker.redactedDescription
        for connection in [listener, publisher] {
            connection.closeFuture.whenComplete { [state] _ in
                let report = state.withLockedValue { state -> Bool in
                    defer { state.closed = true }
                    return !state.closing && !state.closed
                }
                if report { onClose(BrokerError("\(description): connection closed")) }
            }
        }
    }

    func subscribe(to topics: [String]) async throws {
        for topic in topics {
            let ready = listener.eventLoop.makePromise(of: Void.self)
            let task = Task { await self.listen(to: topic, ready: ready) }
            state.withLockedValue { $0.topics[topic] = task }
            try await withBrokerTimeout(broker.configuration.connectTimeout) { try await ready.futureResult.get() }
        }
    }

    func unsubscribe(from topics: [String]) async throws {
        let tasks = state.withLockedValue { state in topics.compactMap { state.topics.removeValue(forKey: $0) } }
        for task in tasks { task.cancel() }
    }

    /// LISTENs to `topic`'s channel until cancelled: notifications go at once into a bounded queue,
    /// handled in order by a second task.
    private func listen(to topic: String, ready: EventLoopPromise<Void>) async {
        let limit = broker.configuration.maxPendingNotifications
        let (queue, queued) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingOldest(limit))
        let handler = Task { for await payload in queue { await handle(payload) } }
        do {
            try await listener.listen(on: broker.channel(for: topic)) { notifications in
                ready.succeed()
                var dropped = 0
                for try await notification in notifications {
                    if case .dropped = queued.yield(notification.payload) {
                        dropped += 1
                        if dropped == 1 || dropped % 1000 == 0 {
                            logger.warning("notifications dropped: over maxPendingNotifications", metadata: ["topic": "\(topic)", "dropped": "\(dropped)"])
                        }
                    }
                }
            }
        } catch {
            ready.fail(error)
        }
        ready.fail(CancellationError())  // no effect once succeeded
        queued.finish()
        await handler.value
    }

    private func handle(_ payload: String) async {
        switch PostgresWire.parse(payload) {
        case .inline(let message)?:
            onMessage(message)
        case .reference(let topic, let origin, let row)?:
            guard let message = await fetch(row: row, topic: topic, origin: origin) else { return }
            onMessage(message)
        case nil:
            return
        }
    }

    private func fetch(row: Int64, topic: String, origin: BrokerNodeID) async -> BrokerMessage? {
        do {
            let rows = try await publisher.query(
                PostgresQuery(unsafeSQL: "SELECT is_text, payload FROM \(broker.configuration.table) WHERE id = $1",
                              binds: { var binds = PostgresBindings(); binds.append(row); return binds }()),
                logger: logger)
            for try await (isText, payload) in rows.decode((Bool, ByteBuffer).self) {
                return BrokerMessage(topic: topic, origin: origin, isText: isText, payload: payload)
            }
        } catch {
            logger.warning("a message's row could not be read", metadata: ["row": "\(row)", "error": "\(error)"])
        }
        return nil  // deleted (older than the TTL) or unreadable: lost, at-most-once
    }

    func publish(_ messages: [BrokerMessage]) async throws {
        // Sent one after the other on one connection: the server notifies in commit order.
        for message in messages {
            let channel = broker.channel(for: message.topic)
            var binds = PostgresBindings()
            binds.append(channel)
            let sql: String
            if let inline = PostgresWire.inlinePayload(message, limit: broker.configuration.maxNotifyBytes) {
                binds.append(inline)
                sql = "SELECT pg_notify($1, $2)"
            } else {
                binds.append(PostgresWire.referencePrefix(message))
                binds.append(message.isText)
                binds.append(message.payload)
                sql = "WITH row AS (INSERT INTO \(broker.configuration.table) (is_text, payload) VALUES ($3, $4) RETURNING id) "
                    + "SELECT pg_notify($1, $2 || row.id::text) FROM row"
            }
            try await publisher.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        }
    }

    func ping() async throws {
        try await publisher.query("SELECT 1", logger: logger)
        try await listener.query("SELECT 1", logger: logger)
        let ttl = broker.configuration.rowTTL
        let due = state.withLockedValue { state -> Bool in
            guard NIODeadline.now() - state.lastCleanup >= .nanoseconds(ttl.nanoseconds / 2) else { return false }
            state.lastCleanup = .now()
            return true
        }
        if due { try await deleteExpiredRows() }
    }

    /// Deletes the rows older than the TTL.
    func deleteExpiredRows() async throws {
        let seconds = Double(broker.configuration.rowTTL.nanoseconds) / 1e9
        var binds = PostgresBindings()
        binds.append(seconds)
        try await publisher.query(PostgresQuery(
            unsafeSQL: "DELETE FROM \(broker.configuration.table) WHERE created_at < now() - make_interval(secs => $1)", binds: binds),
            logger: logger)
    }

    /// The rows in the message table (for tests and operators).
    func rowCount() async throws -> Int {
        let rows = try await publisher.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(broker.configuration.table)"), logger: logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }

    func close() async {
        let tasks = state.withLockedValue { state -> [Task<Void, Never>] in
            state.closing = true
            defer { state.topics.removeAll() }
            return Array(state.topics.values)
        }
        for task in tasks { task.cancel() }
        try? await listener.close()
        try? await publisher.close()
    }
}
