import NIOConcurrencyHelpers
import NIOCore

/// Flushes, once at the end of the current turn of an event loop, every connection of that loop
/// that wrote outside a read batch: one task on the loop per turn, however many connections
/// wrote (a publish to 10,000 subscribers asks for one, not 10,000), and one flush per
/// connection however many messages it was given in that turn.
final class LoopFlusher {
    let eventLoop: any EventLoop
    private var pending: [ConnectionDriver] = []
    private var spare: [ConnectionDriver] = []
    private var scheduled = false

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let flushers = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<LoopFlusher>]>([:])

    /// The flusher of `eventLoop` (made on first use, kept with the loop). Call on that loop.
    static func of(_ eventLoop: any EventLoop) -> LoopFlusher {
        let id = ObjectIdentifier(eventLoop)
        return flushers.withLockedValue { flushers in
            if let flusher = flushers[id] { return flusher }
            let flusher = NIOLoopBound(LoopFlusher(eventLoop: eventLoop), eventLoop: eventLoop)
            flushers[id] = flusher
            return flusher
        }.value
    }

    /// Flushes `driver` at the end of this turn. The driver asks once per turn.
    func flushSoon(_ driver: ConnectionDriver) {
        pending.append(driver)
        guard !scheduled else { return }
        scheduled = true
        eventLoop.assumeIsolated().execute { [self] in run() }
    }

    private func run() {
        scheduled = false
        swap(&pending, &spare)
        for driver in spare { driver.flushNow() }
        spare.removeAll(keepingCapacity: spare.count <= 1024)
    }
}
