@testable import Duplex
import Testing

/// Graceful shutdown waits on the live-connection count reaching zero (no polling).
@Suite struct LiveConnectionCounterTests {
    @Test func waitingAtZeroReturnsAtOnce() async {
        let counter = LiveConnectionCounter()
        await counter.waitUntilZero()
        #expect(counter.value == 0)
    }

    @Test func theLastCloseWakesEveryWaiter() async throws {
        let counter = LiveConnectionCounter()
        counter.opened()
        counter.opened()
        let woken = Counter()
        let waiters = (0..<3).map { _ in
            Task {
                await counter.waitUntilZero()
                woken.increment()
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        counter.closed()
        try await Task.sleep(for: .milliseconds(50))
        #expect(woken.current == 0, "one of two connections is still open")
        counter.closed()
        try await eventually("every waiter woken") { woken.current == 3 }
        for waiter in waiters { await waiter.value }
    }

    @Test func aCancelledWaitReturns() async throws {
        let counter = LiveConnectionCounter()
        counter.opened()
        let waiting = Task { await counter.waitUntilZero() }
        try await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        try await withTimeLimit(5) { await waiting.value }
        #expect(counter.value == 1)
    }
}
