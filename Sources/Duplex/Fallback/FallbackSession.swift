import DuplexCore
import NIOCore

/// The state of one HTTP fallback session, as a pure state machine: no I/O, no clock (every
/// instant is passed in), so that each rule is tested alone (``HTTPSession`` runs it on NIO).
///
/// - The outbox holds each message as its encoded event (``EventStreamFormat``) with its
///   sequence number (the SSE `id:`), from 1 up. Undelivered events count as the connection's
///   buffered bytes (the driver's water marks and hard limit, as for a WebSocket); delivered
///   ones stay for replay until the client acknowledges them (`Last-Event-ID`, or `last=` on a
///   poll), for at most ``HTTPFallbackConfiguration/replayTime`` and within
///   ``HTTPFallbackConfiguration/replayBufferBytes``.
/// - A client that comes back with a `Last-Event-ID` gets every later event again; if some were
///   dropped from the replay buffer meanwhile, it first gets a `lost` event naming them.
/// - Downstream, one SSE stream (a new one replaces the old) or one pending poll (a second one
///   is refused); upstream, one POST at a time.
/// - The session expires after ``HTTPFallbackConfiguration/sessionTimeout`` with nothing attached.
struct FallbackSession {
    typealias Instant = Connection.Instant

    struct Entry {
        let sequence: UInt64
        let event: ByteBuffer
        var deliveredAt: Instant?
    }

    /// What carries events down.
    enum Downstream: Equatable {
        case none
        /// An SSE stream, numbered so that the end of a replaced one is told apart.
        case stream(Int)
        /// A long-poll GET, held since then.
        case poll(since: Instant)
    }

    enum AttachError: Error, Equatable {
        /// A long-poll session already has a pending GET (400).
        case pollPending
        /// The `Last-Event-ID` is one this session never sent (400).
        case unknownEventID(UInt64)
        /// The session is over and its close event was acknowledged.
        case finished
    }

    /// What the client learns when it attaches: the messages that replay cannot give back.
    struct Lost: Equatable {
        var first: UInt64
        var last: UInt64
    }

    let id: String
    let transport: FallbackTransport
    let configuration: HTTPFallbackConfiguration
    private(set) var entries = CircularBuffer<Entry>()
    /// `entries[..<deliveredCount]` were delivered; the rest wait.
    private(set) var deliveredCount = 0
    private(set) var undeliveredBytes = 0
    private(set) var retainedBytes = 0
    private(set) var nextSequence: UInt64 = 1
    /// The highest sequence number dropped from the replay buffer without an acknowledgement.
    private(set) var droppedUnacknowledged: UInt64 = 0
    private(set) var downstream = Downstream.none
    private var streams = 0
    private(set) var postInFlight = false
    private(set) var lastActivity: Instant
    private(set) var lastWrite: Instant
    /// The session's close event is in the outbox: nothing is queued after it.
    private(set) var closeQueued = false
    private(set) var isWritable = true
    private var lowWaterMark = Int.max
    private var highWaterMark = Int.max

    init(id: String, transport: FallbackTransport, configuration: HTTPFallbackConfiguration, at now: Instant) {
        self.id = id
        self.transport = transport
        self.configuration = configuration
        self.lastActivity = now
        self.lastWrite = now
    }

    // MARK: - Outbox

    /// The water marks of ``isWritable`` (the connection's), over the undelivered bytes.
    mutating func setWaterMarks(low: Int, high: Int) {
        lowWaterMark = low
        highWaterMark = high
        updateWritability()
    }

    /// Queues a data message. Returns its sequence number (nil once the close is queued).
    @discardableResult
    mutating func enqueueMessage(isText: Bool, payload: ByteBuffer) -> UInt64? {
        guard !closeQueued else { return nil }
        return append { EventStreamFormat.message(sequence: $0, isText: isText, payload: payload) }
    }

    /// Queues the end of the session; nothing is queued after it. Returns its sequence number.
    @discardableResult
    mutating func enqueueClose(_ frame: CloseFrame) -> UInt64? {
        guard !closeQueued else { return nil }
        defer { closeQueued = true }
        return append { EventStreamFormat.close(sequence: $0, frame) }
    }

    private mutating func append(_ encode: (UInt64) -> ByteBuffer) -> UInt64 {
        let sequence = nextSequence
        nextSequence += 1
        let event = encode(sequence)
        entries.append(Entry(sequence: sequence, event: event, deliveredAt: nil))
        undeliveredBytes += event.readableBytes
        updateWritability()
        return sequence
    }

    /// Whether events wait to be delivered.
    var hasUndelivered: Bool { deliveredCount < entries.count }

    /// Whether the close event went down and nothing waits: the session only lingers for a replay.
    var closeDelivered: Bool { closeQueued && !hasUndelivered }

    /// Takes the waiting events (at least one if any wait, then up to `maxBytes` in all) and
    /// marks them delivered.
    mutating func takeUndelivered(maxBytes: Int = .max, at now: Instant) -> [ByteBuffer] {
        var taken: [ByteBuffer] = []
        var bytes = 0
        while deliveredCount < entries.count {
            let size = entries[entries.index(entries.startIndex, offsetBy: deliveredCount)].event.readableBytes
            if !taken.isEmpty && bytes + size > maxBytes { break }
            let index = entries.index(entries.startIndex, offsetBy: deliveredCount)
            entries[index].deliveredAt = now
            taken.append(entries[index].event)
            bytes += size
            deliveredCount += 1
        }
        undeliveredBytes -= bytes
        retainedBytes += bytes
        if !taken.isEmpty { lastWrite = now }
        updateWritability()
        prune(at: now)
        return taken
    }

    /// Something else went down the stream (a heartbeat).
    mutating func wrote(at now: Instant) {
        lastWrite = now
    }

    /// Drops delivered events acknowledged by `lastEventID`, past the replay time, or over the
    /// replay buffer (oldest first).
    mutating func prune(at now: Instant) {
        let ttl = configuration.replayTime.duration
        while deliveredCount > 0, let first = entries.first {
            let expired = first.deliveredAt.map { $0 + ttl <= now } ?? false
            guard expired || retainedBytes > configuration.replayBufferBytes else { break }
            dropFirst(acknowledged: false)
        }
    }

    private mutating func dropFirst(acknowledged: Bool) {
        let entry = entries.removeFirst()
        if deliveredCount > 0 {
            deliveredCount -= 1
            retainedBytes -= entry.event.readableBytes
        } else {
            undeliveredBytes -= entry.event.readableBytes
        }
        if !acknowledged { droppedUnacknowledged = max(droppedUnacknowledged, entry.sequence) }
    }

    /// The client has every event up to `sequence`.
    private mutating func acknowledge(upTo sequence: UInt64) {
        while let first = entries.first, first.sequence <= sequence {
            dropFirst(acknowledged: true)
        }
        updateWritability()
    }

    private mutating func updateWritability() {
        if isWritable, undeliveredBytes > highWaterMark {
            isWritable = false
        } else if !isWritable, undeliveredBytes <= lowWaterMark {
            isWritable = true
        }
    }

    // MARK: - Requests

    /// A GET comes for the events: an SSE stream (replacing any other) or a long poll (refused
    /// while another is pending). With `lastEventID`, what came after it is delivered again.
    /// Returns the stream's number (for ``detach(stream:at:)``) and the messages replay cannot
    /// give back, if any.
    mutating func attach(lastEventID: UInt64?, at now: Instant) -> Result<(stream: Int, lost: Lost?), AttachError> {
        if transport == .longPolling, case .poll = downstream { return .failure(.pollPending) }
        if let lastEventID, lastEventID >= nextSequence { return .failure(.unknownEventID(lastEventID)) }
        var lost: Lost?
        if let lastEventID {
            acknowledge(upTo: lastEventID)
            if droppedUnacknowledged > lastEventID {
                lost = Lost(first: lastEventID + 1, last: droppedUnacknowledged)
            }
            // Everything after it goes again.
            undeliveredBytes += retainedBytes
            retainedBytes = 0
            deliveredCount = 0
            for index in entries.indices { entries[index].deliveredAt = nil }
            updateWritability()
        }
        if closeQueued, entries.isEmpty { return .failure(.finished) }
        lastActivity = now
        switch transport {
        case .eventStream:
            streams += 1
            downstream = .stream(streams)
            lastWrite = now
            return .success((streams, lost))
        case .longPolling:
            downstream = .poll(since: now)
            return .success((0, lost))
        }
    }

    /// The stream numbered `stream` ended, or the pending poll was answered (`stream` 0).
    mutating func detach(stream: Int, at now: Instant) {
        switch downstream {
        case .stream(let current) where current == stream: downstream = .none
        case .poll where stream == 0: downstream = .none
        default: return
        }
        lastActivity = now
    }

    /// A POST begins; false while another one is in flight (400).
    mutating func beginPost(at now: Instant) -> Bool {
        guard !postInFlight else { return false }
        postInFlight = true
        lastActivity = now
        return true
    }

    /// The POST was answered.
    mutating func endPost(at now: Instant) {
        postInFlight = false
        lastActivity = now
    }

    // MARK: - Time

    /// What is due when the clock reaches ``nextDeadline``.
    struct Due: Equatable {
        /// Nothing attached for the session timeout: the session is over.
        var expired = false
        /// The stream needs a heartbeat.
        var heartbeat = false
        /// The pending poll must be answered (empty).
        var pollTimedOut = false
    }

    /// The next instant something is due (expiry, a heartbeat, a poll's timeout, a replay drop).
    var nextDeadline: Instant? {
        var deadline: Instant?
        func consider(_ instant: Instant) { deadline = deadline.map { min($0, instant) } ?? instant }
        switch downstream {
        case .none where !postInFlight: consider(lastActivity + configuration.sessionTimeout.duration)
        case .none: break
        case .stream: consider(lastWrite + configuration.heartbeatInterval.duration)
        case .poll(let since): consider(since + configuration.pollTimeout.duration)
        }
        if deliveredCount > 0, let delivered = entries.first?.deliveredAt {
            consider(delivered + configuration.replayTime.duration)
        }
        return deadline
    }

    /// The clock says `now`: drops replay entries past their time and says what else is due.
    mutating func timerFired(at now: Instant) -> Due {
        prune(at: now)
        var due = Due()
        switch downstream {
        case .none where !postInFlight:
            due.expired = lastActivity + configuration.sessionTimeout.duration <= now
        case .none: break
        case .stream: due.heartbeat = lastWrite + configuration.heartbeatInterval.duration <= now
        case .poll(let since): due.pollTimedOut = since + configuration.pollTimeout.duration <= now
        }
        return due
    }
}
