import NIOCore

/// The result of `body`, or a ``BrokerError`` saying the broker did not answer in `timeout`
/// (`body` is cancelled then). For brokers' commands that must not hang a start or a session.
public func withBrokerTimeout<T: Sendable>(_ timeout: TimeAmount, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
            throw BrokerError("no answer from the broker in \(Double(timeout.nanoseconds) / 1e9) s")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
