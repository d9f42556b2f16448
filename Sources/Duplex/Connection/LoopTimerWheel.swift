import DuplexCore
import NIOConcurrencyHelpers
import NIOCore

/// One timer per event loop for the deadlines of all its connections (keepalive pings, pong,
/// idle and close timeouts), instead of a `Scheduled` task per connection and timer.
///
/// A min-heap of (deadline, slot) entries and one scheduled task for the earliest. A connection
/// owns a slot while it is open; moving its deadline pushes a new entry and leaves the old one
/// to be skipped when it comes up (an entry counts only if it still is its connection's armed
/// deadline), so nothing is searched or removed on the hot path. Closing a connection frees its
/// slot at once: the wheel holds no closed connection.
///
/// All of it runs on its event loop.
final class LoopTimerWheel {
    private struct Entry {
        var deadline: UInt64
        var slot: Int32
    }

    let eventLoop: any EventLoop
    private var heap: [Entry] = []
    private var slots: [ConnectionDriver?] = []
    private var armed: [UInt64] = []
    private var freeSlots: [Int32] = []
    private var liveSlots = 0
    private var scheduled: Scheduled<Void>?
    private var scheduledDeadline = UInt64.max

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    // MARK: - The wheel of each loop

    private static let wheels = NIOLockedValueBox<[ObjectIdentifier: NIOLoopBound<LoopTimerWheel>]>([:])

    /// The wheel of `eventLoop` (made on first use; it goes away when its last connection closes).
    static func of(_ eventLoop: any EventLoop) -> LoopTimerWheel {
        let id = ObjectIdentifier(eventLoop)
        let bound = wheels.withLockedValue { wheels -> NIOLoopBound<LoopTimerWheel> in
            if let wheel = wheels[id] { return wheel }
            let wheel = NIOLoopBound(LoopTimerWheel(eventLoop: eventLoop), eventLoop: eventLoop)
            wheels[id] = wheel
            return wheel
        }
        return bound.value
    }

    /// For tests only: how many connections hold a slot on `eventLoop`'s wheel (0 when the loop
    /// has no wheel: its last connection closed). Call it on `eventLoop`.
    static func liveConnectionCount(on eventLoop: any EventLoop) -> Int {
        let bound = wheels.withLockedValue { $0[ObjectIdentifier(eventLoop)] }
        return bound?.value.liveSlots ?? 0
    }

    // MARK: - Connections

    /// Gives `driver` a slot; pass it to ``arm(slot:at:)`` and ``release(slot:)``.
    func register(_ driver: ConnectionDriver) -> Int32 {
        liveSlots += 1
        if let slot = freeSlots.popLast() {
            slots[Int(slot)] = driver
            armed[Int(slot)] = .max
            return slot
        }
        slots.append(driver)
        armed.append(.max)
        return Int32(slots.count - 1)
    }

    /// Frees the slot of a closed connection.
    func release(slot: Int32) {
        slots[Int(slot)] = nil
        armed[Int(slot)] = .max
        freeSlots.append(slot)
        liveSlots -= 1
        if liveSlots == 0 { retire() }
    }

    /// Sets the slot's deadline (nanoseconds on `eventLoop.now`'s clock); nil disarms it.
    func arm(slot: Int32, at deadline: UInt64?) {
        let deadline = deadline ?? .max
        guard armed[Int(slot)] != deadline else { return }
        armed[Int(slot)] = deadline
        guard deadline != .max else { return }
        push(Entry(deadline: deadline, slot: slot))
        if deadline < scheduledDeadline { schedule(at: deadline) }
    }

    // MARK: - Firing

    private func schedule(at deadline: UInt64) {
        scheduled?.cancel()
        scheduledDeadline = deadline
        scheduled = eventLoop.assumeIsolated().scheduleTask(deadline: NIODeadline.uptimeNanoseconds(deadline)) { [self] in
            scheduled = nil
            scheduledDeadline = .max
            fire()
        }
    }

    private func fire() {
        let now = eventLoop.now.uptimeNanoseconds
        while let top = heap.first, top.deadline <= now {
            popTop()
            let slot = Int(top.slot)
            guard slot < slots.count, armed[slot] == top.deadline, let driver = slots[slot] else { continue }
            armed[slot] = .max
            driver.timerFired(at: Connection.Instant(nanoseconds: now))
        }
        // Entries of moved deadlines pile up at most one per move; drop them when they dominate.
        if heap.count > 64 && heap.count > 4 * liveSlots { compact() }
        if let top = heap.first { schedule(at: top.deadline) }
    }

    /// Rebuilds the heap from the armed deadlines only.
    private func compact() {
        heap = []
        for (slot, deadline) in armed.enumerated() where deadline != .max && slots[slot] != nil {
            push(Entry(deadline: deadline, slot: Int32(slot)))
        }
    }

    /// No connection is left: the wheel leaves the registry (a new one is made when needed).
    private func retire() {
        scheduled?.cancel()
        scheduled = nil
        scheduledDeadline = .max
        heap = []
        slots = []
        armed = []
        freeSlots = []
        let id = ObjectIdentifier(eventLoop)
        Self.wheels.withLockedValue { wheels in
            if let wheel = wheels[id], wheel.value === self { wheels[id] = nil }
        }
    }

    // MARK: - Heap

    private func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
