import Atomics
import NIOConcurrencyHelpers

/// The number of open connections of a server, and a wait for it to reach zero (graceful
/// shutdown waits on it rather than polling).
final class LiveConnectionCounter: Sendable {
    private let count = ManagedAtomic(0)
    /// Tasks waiting for zero, by a number of their own (so a cancelled one can leave).
    private let waiters = NIOLockedValueBox<(next: Int, waiting: [Int: CheckedContinuation<Void, Never>])>((0, [:]))

    var value: Int { count.load(ordering: .relaxed) }

    func opened() { count.wrappingIncrement(ordering: .relaxed) }

    func closed() {
        if count.wrappingDecrementThenLoad(ordering: .acquiringAndReleasing) == 0 { wakeWaiters() }
    }

    /// Returns once the count is zero (at once if it is), or once the calling task is cancelled.
    func waitUntilZero() async {
        let id = waiters.withLockedValue { state -> Int in
            defer { state.next += 1 }
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                waiters.withLockedValue { $0.waiting[id] = continuation }
                // A close that reached zero before the waiter was registered did not see it;
                // so did a cancellation that came first.
                if count.load(ordering: .acquiring) == 0 || Task.isCancelled { wake(id) }
            }
        } onCancel: {
            wake(id)
        }
    }

    private func wake(_ id: Int) {
        waiters.withLockedValue { $0.waiting.removeValue(forKey: id) }?.resume()
    }

    private func wakeWaiters() {
        let woken = waiters.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            defer { state.waiting.removeAll() }
            return Array(state.waiting.values)
        }
        for continuation in woken { continuation.resume() }
    }
}
