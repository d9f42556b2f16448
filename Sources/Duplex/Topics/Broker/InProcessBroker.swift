import NIOConcurrencyHelpers

/// A broker inside one process: several ``WebSocketServer``s in one process share their topics
/// through it, as instances on several machines do through Redis or PostgreSQL. Delivery is in
/// publish order, synchronous, on the publishing session's worker.
///
/// ``setAvailable(_:)`` takes it away (every session ends, new ones are refused) and brings it
/// back, for testing what an application does when its broker goes away.
public final class InProcessBroker: PubSubBroker {
    private struct Member {
        var topics: Set<String> = []
        let onMessage: @Sendable (BrokerMessage) -> Void
        let onClose: @Sendable (any Error) -> Void
    }

    private struct State {
        var available = true
        var nextID = 0
        var members: [Int: Member] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// An empty broker, available.
    public init() {}

    /// `in-process`, the `broker` dimension of the fan-out's metrics.
    public var kind: String { "in-process" }
    /// `in-process`: there is no address or credential to show.
    public var redactedDescription: String { "in-process" }

    /// Joins the broker: the session receives the messages of the topics it subscribes to, published
    /// by any other session, synchronously and in publish order.
    /// - Throws: ``BrokerError`` while the broker is unavailable (``setAvailable(_:)``).
    public func connect(onMessage: @escaping @Sendable (BrokerMessage) -> Void,
                        onClose: @escaping @Sendable (any Error) -> Void) async throws -> any PubSubBrokerSession {
        let id = try state.withLockedValue { state -> Int in
            guard state.available else { throw BrokerError("in-process broker: not available") }
            state.nextID += 1
            state.members[state.nextID] = Member(onMessage: onMessage, onClose: onClose)
            return state.nextID
        }
        return Session(broker: self, id: id)
    }

    /// Takes the broker away (`false`: every session ends with an error, connecting fails) or
    /// brings it back (`true`).
    public func setAvailable(_ available: Bool) {
        let closed = state.withLockedValue { state -> [Member] in
            state.available = available
            guard !available else { return [] }
            defer { state.members.removeAll() }
            return Array(state.members.values)
        }
        for member in closed { member.onClose(BrokerError("in-process broker: went away")) }
    }

    /// The number of sessions subscribed to `topic`.
    public func subscriberCount(of topic: String) -> Int {
        state.withLockedValue { $0.members.values.count { $0.topics.contains(topic) } }
    }

    private struct Session: PubSubBrokerSession {
        let broker: InProcessBroker
        let id: Int

        func subscribe(to topics: [String]) async throws {
            try broker.withMember(id) { $0.topics.formUnion(topics) }
        }

        func unsubscribe(from topics: [String]) async throws {
            try broker.withMember(id) { $0.topics.subtract(topics) }
        }

        func publish(_ messages: [BrokerMessage]) async throws {
            for message in messages {
                let receivers = try broker.state.withLockedValue { state -> [@Sendable (BrokerMessage) -> Void] in
                    guard state.members[id] != nil else { throw BrokerError("in-process broker: session ended") }
                    return state.members.values.filter { $0.topics.contains(message.topic) }.map(\.onMessage)
                }
                for receive in receivers { receive(message) }
            }
        }

        func ping() async throws {
            try broker.withMember(id) { _ in }
        }

        func close() async {
            broker.state.withLockedValue { _ = $0.members.removeValue(forKey: id) }
        }
    }

    private func withMember(_ id: Int, _ body: (inout Member) -> Void) throws {
        try state.withLockedValue { state in
            guard var member = state.members[id] else { throw BrokerError("in-process broker: session ended") }
            body(&member)
            state.members[id] = member
        }
    }
}
