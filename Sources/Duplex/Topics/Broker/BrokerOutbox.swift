import NIOConcurrencyHelpers

/// What ``BrokerFanout``'s worker has to do, handed over from the topic registry's callers: the
/// topics that must be subscribed at the broker, and the local publishes not sent yet (at most
/// `limit`; the rest are dropped and counted). Filled from any thread, emptied by one task.
final class BrokerOutbox: Sendable {
    /// One turn of the worker: everything that waited.
    struct Work {
        var publishes: [BrokerMessage] = []
        /// The topics with local subscribers, when they changed since the last turn.
        var wantedTopics: Set<String>?
        /// Why the session ended, if it did.
        var sessionEnded: (any Error)?
        var stopped = false
    }

    private struct State {
        var wanted: Set<String> = []
        var wantedChanged = true
        var publishes: [BrokerMessage] = []
        var accepting = false
        var sessionEnded: (any Error)?
        var stopped = false
        var waiter: CheckedContinuation<Void, Never>?

        var hasWork: Bool { wantedChanged || !publishes.isEmpty || sessionEnded != nil || stopped }

        mutating func takeWaiter() -> CheckedContinuation<Void, Never>? {
            defer { waiter = nil }
            return waiter
        }
    }

    private let state = NIOLockedValueBox(State())
    private let limit: Int

    init(limit: Int, wanted: Set<String>) {
        self.limit = limit
        state.withLockedValue { $0.wanted = wanted }
    }

    /// Queues a local publish. Returns false when it is dropped: no session, or `limit` waiting.
    func publish(_ message: BrokerMessage) -> Bool {
        let (queued, waiter) = state.withLockedValue { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard state.accepting, !state.stopped, state.publishes.count < limit else { return (false, nil) }
            state.publishes.append(message)
            return (true, state.takeWaiter())
        }
        waiter?.resume()
        return queued
    }

    /// A topic got its first local subscriber (`subscribed`) or lost its last.
    func topic(_ topic: String, subscribed: Bool) {
        let waiter = state.withLockedValue { state in
            if subscribed { state.wanted.insert(topic) } else { state.wanted.remove(topic) }
            state.wantedChanged = true
            return state.takeWaiter()
        }
        waiter?.resume()
    }

    /// A session is up (publishes are queued) or down (they are dropped: at-most-once). Going up
    /// marks every wanted topic to be subscribed again.
    func setSessionUp(_ up: Bool) {
        state.withLockedValue { state in
            state.accepting = up
            state.sessionEnded = nil
            if up { state.wantedChanged = true } else { state.publishes.removeAll() }
        }
    }

    /// The session ended (its `onClose`).
    func sessionEnded(_ error: any Error) {
        let waiter = state.withLockedValue { state in
            state.accepting = false
            state.sessionEnded = error
            return state.takeWaiter()
        }
        waiter?.resume()
    }

    /// Stops: the worker's next turn says so, and publishes are dropped from now on.
    func stop() {
        let waiter = state.withLockedValue { state in
            state.stopped = true
            state.accepting = false
            return state.takeWaiter()
        }
        waiter?.resume()
    }

    /// Whether ``stop()`` was called.
    var isStopped: Bool { state.withLockedValue { $0.stopped } }

    /// Waits for work and takes all of it.
    func next() async -> Work {
        while true {
            if let work = take() { return work }
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.hasWork { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    private func take() -> Work? {
        state.withLockedValue { state -> Work? in
            guard state.hasWork else { return nil }
            var work = Work()
            work.stopped = state.stopped
            work.sessionEnded = state.sessionEnded
            state.sessionEnded = nil
            if state.wantedChanged {
                work.wantedTopics = state.wanted
                state.wantedChanged = false
            }
            swap(&work.publishes, &state.publishes)
            return work
        }
    }
}
