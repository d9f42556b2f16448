import NIOCore

// The time rules of a Connection (keepalive pings, pong timeout, idle timeout, close timeout),
// as pure inputs in the style of python-websockets: the driver reports the time with the `at:`
// variants and calls `timerFired(at:)` at `nextDeadline`; the core decides what to send and
// when the transport must close. The core never reads a clock.
//
// With the timer settings at their defaults (all off) and the `at:` variants unused, a
// Connection behaves exactly as it did before these rules existed.

// MARK: - Time

extension Connection {
    /// A point on a monotonic clock chosen by the driver, in nanoseconds. The core never reads a clock.
    ///
    /// Only differences between instants matter: a driver may count from any origin (for
    /// instance `NIODeadline.uptimeNanoseconds`, or 0 in a test with virtual time), as long as
    /// every instant it gives one connection comes from the same clock.
    public struct Instant: Comparable, Hashable, Sendable {
        /// Nanoseconds since the driver's origin.
        public var nanoseconds: UInt64

        /// The instant `nanoseconds` after the driver's origin.
        public init(nanoseconds: UInt64) {
            self.nanoseconds = nanoseconds
        }

        /// Whether `lhs` is earlier than `rhs`.
        public static func < (lhs: Instant, rhs: Instant) -> Bool {
            lhs.nanoseconds < rhs.nanoseconds
        }

        /// `lhs` moved by `rhs` (later if positive, earlier if negative), saturating at 0 and at
        /// `UInt64.max` nanoseconds. Parts of a nanosecond are truncated.
        public static func + (lhs: Instant, rhs: Duration) -> Instant {
            let (negative, delta) = rhs.nanosecondMagnitude
            if !negative {
                let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(delta)
                return Instant(nanoseconds: overflow ? .max : sum)
            }
            let (difference, overflow) = lhs.nanoseconds.subtractingReportingOverflow(delta)
            return Instant(nanoseconds: overflow ? 0 : difference)
        }

        /// The time from `rhs` to `lhs`; negative when `lhs` is earlier than `rhs`.
        public static func - (lhs: Instant, rhs: Instant) -> Duration {
            lhs >= rhs
                ? .nanoseconds(lhs.nanoseconds - rhs.nanoseconds)
                : .zero - .nanoseconds(rhs.nanoseconds - lhs.nanoseconds)
        }
    }

    /// What to do when a keepalive ping gets no pong in time.
    public enum PongTimeoutAction: Sendable, Hashable {
        /// Start the closing handshake with this code, reason "keepalive ping timeout" (and arm
        /// the close timeout, if ``Configuration/closeTimeout`` is set). A code that may not be
        /// sent (see ``CloseCode/isValidOnWire``) is replaced with 1011 (internal error).
        case close(CloseCode)
        /// Close the transport at once, without a close frame: ``shouldCloseTransport`` becomes
        /// true, the connection is ``ConnectionState/closed`` (nothing more is sent), and
        /// ``closeResult`` is 1006 (abnormal closure) with the reason "keepalive ping timeout".
        case dropTransport
    }

    /// An application ping (sent with ``ping(_:at:)``) that the peer answered.
    public struct AcknowledgedPing: Sendable, Hashable {
        /// The ping's payload.
        public var payload: ByteBuffer
        /// From the instant given to ``ping(_:at:)`` to the instant given to the
        /// ``receive(_:at:)`` whose bytes carried the pong. (Bytes fed with ``receive(_:)``,
        /// without a time, count as received at the last instant given to ``receive(_:at:)`` or
        /// ``start(at:)``: a driver that wants round-trip times reports every read's time.)
        public var roundTrip: Duration

        /// An acknowledged ping with this payload and round-trip time.
        public init(payload: ByteBuffer, roundTrip: Duration) {
            self.payload = payload
            self.roundTrip = roundTrip
        }
    }

    /// At most this many application pings (``ping(_:at:)``) may wait for their pong at once;
    /// one more throws ``SendError/tooManyOutstandingPings(limit:)``.
    public static let maxOutstandingPings = 32
}

extension Duration {
    /// The sign and the whole nanoseconds (truncated toward zero) of the duration, the
    /// magnitude saturating at `UInt64.max`.
    var nanosecondMagnitude: (negative: Bool, magnitude: UInt64) {
        let (seconds, attoseconds) = components  // both have the sign of the duration
        let (whole, overflow) = seconds.magnitude.multipliedReportingOverflow(by: 1_000_000_000)
        let (total, overflow2) = whole.addingReportingOverflow(attoseconds.magnitude / 1_000_000_000)
        return (seconds < 0 || attoseconds < 0, overflow || overflow2 ? .max : total)
    }
}

// MARK: - State

/// The timer state a ``Connection`` holds: its deadlines (each nil while not armed), the pings
/// waiting for a pong, and the answered application pings not yet taken.
///
/// The deadlines are armed and disarmed by the connection's inputs; ``earliest`` caches their
/// minimum so that ``Connection/nextDeadline`` is a load. Receiving only stores
/// ``lastActivity``: the idle deadline is checked lazily when it fires.
@usableFromInline
struct ConnectionTimers {
    /// A ping waiting for its pong: sent by the keepalive or by ``Connection/ping(_:at:)``.
    struct OutstandingPing {
        var payload: ByteBuffer
        var sentAt: Connection.Instant
        var isKeepalive: Bool
    }

    /// ``Connection/start(at:)`` was called.
    var started = false
    /// ``Connection/transportClosed()`` was called: nothing is armed again.
    var stopped = false

    /// When the next keepalive ping is due.
    var nextPing: Connection.Instant?
    /// When the outstanding keepalive ping times out.
    var pongDeadline: Connection.Instant?
    /// When to look at the idle time next (it may have moved since: see ``lastActivity``).
    var idleCheck: Connection.Instant?
    /// When the transport must close because the closing handshake took too long.
    var closeDeadline: Connection.Instant?
    /// The earliest of the four deadlines.
    @usableFromInline private(set) var earliest: Connection.Instant?

    /// The instant of the last ``Connection/receive(_:at:)`` (or of ``Connection/start(at:)``):
    /// where the idle time counts from, and the time of the events the received bytes produce.
    var lastActivity = Connection.Instant(nanoseconds: 0)

    /// The pings waiting for a pong, oldest first (a pong answers its ping and every earlier one).
    var outstanding: [OutstandingPing] = []
    /// How many of ``outstanding`` are application pings.
    var outstandingApplicationPings = 0
    /// The counter whose 8 big-endian bytes are the last keepalive ping's payload.
    var keepaliveCounter: UInt64 = 0
    /// Application pings answered and not yet taken by ``Connection/nextAcknowledgedPing()``, oldest first.
    var acknowledged: [Connection.AcknowledgedPing] = []

    /// A timer decided that the transport must close now (close timeout, or the pong timeout's
    /// ``Connection/PongTimeoutAction/dropTransport``): ``Connection/shouldCloseTransport`` is true.
    @usableFromInline var mustCloseTransport = false
    /// The pong timeout dropped the transport: ``Connection/closeResult`` is 1006 and the
    /// connection did not end cleanly, whatever arrives after.
    var dropped = false

    /// Recomputes ``earliest`` after a deadline changed.
    mutating func refresh() {
        earliest = Self.earlier(Self.earlier(nextPing, pongDeadline), Self.earlier(idleCheck, closeDeadline))
    }

    static func earlier(_ a: Connection.Instant?, _ b: Connection.Instant?) -> Connection.Instant? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    /// Disarms the timers that only run while the connection is open: keepalive, pong timeout, idle.
    mutating func disarmOpenTimers() {
        guard nextPing != nil || pongDeadline != nil || idleCheck != nil else { return }
        nextPing = nil
        pongDeadline = nil
        idleCheck = nil
        refresh()
    }

    /// Disarms every timer.
    mutating func disarmAll() {
        nextPing = nil
        pongDeadline = nil
        idleCheck = nil
        closeDeadline = nil
        earliest = nil
    }
}

// MARK: - Public API

extension Connection {
    /// The connection opened at `now`: arms the keepalive ping (at `now` +
    /// ``Configuration/pingInterval``) and the idle timeout (``Configuration/idleTimeout`` from
    /// `now`), if set. Call it once, when the opening handshake completed; later calls do nothing.
    ///
    /// Before this call ``nextDeadline`` is nil, unless the close timeout was armed: it does
    /// not wait for the start (``close(code:reason:at:)``, or a client that received the
    /// server's close frame in bytes fed before the start).
    public mutating func start(at now: Instant) {
        guard !timers.started, !timers.stopped else { return }
        timers.started = true
        timers.lastActivity = now
        guard state == .open else { return }
        if let interval = configuration.pingInterval { timers.nextPing = now + interval }
        if let timeout = configuration.idleTimeout { timers.idleCheck = now + timeout }
        timers.refresh()
    }

    /// Adds bytes read from the transport at `now`, like ``receive(_:)``: `now` is the last
    /// activity (the idle timeout counts from it) and the time of the events these bytes
    /// produce (a pong answering a ping at `now`). Call ``nextEvent()`` until it returns nil.
    public mutating func receive(_ bytes: ByteBuffer, at now: Instant) {
        timers.lastActivity = now
        receive(bytes)
    }

    /// The earliest instant at which the driver must call ``timerFired(at:)``; nil when no
    /// timer is armed. A stored value: cheap to read after every input.
    ///
    /// It may be earlier than needed (the idle deadline moves lazily with received bytes):
    /// calling ``timerFired(at:)`` then does nothing but move it.
    @inlinable public var nextDeadline: Instant? { timers.earliest }

    /// Does what is due at `now`: sends a keepalive ping, acts on a pong timeout, closes an idle
    /// connection, or ends a closing handshake that took too long. Does nothing when nothing is
    /// due (called early or spuriously) and after ``transportClosed()``.
    ///
    /// Afterwards, write ``takeOutbound()``, close the transport if ``shouldCloseTransport``,
    /// and arm the driver's timer for ``nextDeadline``.
    public mutating func timerFired(at now: Instant) {
        guard !timers.stopped, let earliest = timers.earliest, now >= earliest else { return }
        if let deadline = timers.closeDeadline, now >= deadline {
            // The peer did not finish the closing handshake (or, for a client, the server did
            // not close the transport) in time.
            timers.mustCloseTransport = true
            timers.disarmAll()
            return
        }
        if let deadline = timers.pongDeadline, now >= deadline {
            timers.pongDeadline = nil
            pongTimedOut(at: now)
        }
        if let check = timers.idleCheck, now >= check, let timeout = configuration.idleTimeout {
            let deadline = timers.lastActivity + timeout
            if now >= deadline {
                timers.idleCheck = nil
                closeFromTimer(code: .goingAway, reason: "idle timeout", at: now)
            } else {
                timers.idleCheck = deadline  // bytes arrived since the check was armed
            }
        }
        // Last: a close decided above (pong or idle timeout) leaves no ping to send.
        if let due = timers.nextPing, now >= due {
            timers.nextPing = nil
            sendKeepalivePing(at: now)
        }
        timers.refresh()
    }

    /// Starts the closing handshake like ``close(code:reason:)`` and, if this call sent the
    /// close frame, arms the close timeout: at `now` + ``Configuration/closeTimeout``,
    /// ``shouldCloseTransport`` becomes true even if the peer's close frame has not arrived.
    public mutating func close(code: CloseCode? = .normalClosure, reason: String = "", at now: Instant) throws(SendError) {
        let wasOpen = state == .open
        try close(code: code, reason: reason)
        if wasOpen { armCloseTimeout(from: now) }
    }

    /// Queues an application ping sent at `now` (up to 125 bytes of payload). When a pong with
    /// this payload arrives, the ping (and every earlier outstanding application ping) is
    /// reported by ``nextAcknowledgedPing()`` with its round-trip time.
    ///
    /// - Throws: ``SendError/notOpen``, ``SendError/controlPayloadTooLong(_:)``,
    ///   ``SendError/tooManyOutstandingPings(limit:)`` when ``maxOutstandingPings`` application
    ///   pings are waiting, ``SendError/duplicatePingPayload`` when a ping with the same payload
    ///   (application or keepalive) is waiting.
    public mutating func ping(_ payload: ByteBuffer, at now: Instant) throws(SendError) {
        guard state == .open else { throw SendError.notOpen }
        guard payload.readableBytes <= 125 else { throw SendError.controlPayloadTooLong(payload.readableBytes) }
        guard timers.outstandingApplicationPings < Self.maxOutstandingPings else {
            throw SendError.tooManyOutstandingPings(limit: Self.maxOutstandingPings)
        }
        guard !timers.outstanding.contains(where: { $0.payload == payload }) else { throw SendError.duplicatePingPayload }
        writeFrame(fin: true, reservedBits: [], opcode: .ping, payload: payload)
        timers.outstanding.append(.init(payload: payload, sentAt: now, isKeepalive: false))
        timers.outstandingApplicationPings += 1
    }

    /// The next application ping the peer answered, oldest first; nil when there is none.
    /// Keepalive pings are never reported, and neither are pings sent with ``ping(_:)``.
    public mutating func nextAcknowledgedPing() -> AcknowledgedPing? {
        timers.acknowledged.isEmpty ? nil : timers.acknowledged.removeFirst()
    }

    /// Whether the application's message stream should end without an error: the peer's close
    /// frame was received and no failure happened (whoever started the closing handshake, and
    /// even if the transport then closed on a timeout). False after a protocol error, when the
    /// transport closed without the peer's close frame, or when a pong timeout dropped it.
    public var endedCleanly: Bool {
        closeReceived != nil && failure == nil && !timers.dropped
    }
}

// MARK: - Rules

extension Connection {
    /// Sends the keepalive ping (if still open) and arms the pong deadline.
    mutating func sendKeepalivePing(at now: Instant) {
        guard state == .open else { return }
        var payload: ByteBuffer
        repeat {  // never the payload of an outstanding application ping
            timers.keepaliveCounter &+= 1
            payload = ByteBuffer(integer: timers.keepaliveCounter, endianness: .big)
        } while timers.outstanding.contains(where: { $0.payload == payload })
        writeFrame(fin: true, reservedBits: [], opcode: .ping, payload: payload)
        timers.outstanding.append(.init(payload: payload, sentAt: now, isKeepalive: true))
        timers.pongDeadline = now + configuration.pongTimeout
    }

    /// The keepalive ping got no pong by its deadline.
    mutating func pongTimedOut(at now: Instant) {
        guard state == .open else { return }
        switch configuration.pongTimeoutAction {
        case .close(let code):
            closeFromTimer(code: code.isValidOnWire ? code : .internalError, reason: "keepalive ping timeout", at: now)
        case .dropTransport:
            timers.dropped = true
            timers.mustCloseTransport = true
            state = .closed
            timers.disarmAll()
        }
    }

    /// A closing handshake the core starts itself (pong timeout, idle timeout), with the close timeout.
    mutating func closeFromTimer(code: CloseCode, reason: String, at now: Instant) {
        guard state == .open else { return }
        do {
            try close(code: code, reason: reason)
        } catch {
            try? close(code: code, reason: "")
        }
        armCloseTimeout(from: now)
    }

    /// Arms the close timeout from `now`, if configured; an earlier close deadline stays.
    mutating func armCloseTimeout(from now: Instant) {
        guard let timeout = configuration.closeTimeout, !timers.stopped, !timers.mustCloseTransport else { return }
        let deadline = now + timeout
        if let armed = timers.closeDeadline, armed <= deadline { return }
        timers.closeDeadline = deadline
        timers.refresh()
    }

    /// A pong arrived while pings are outstanding: if it carries the payload of one, that ping
    /// and every earlier one are answered (RFC 6455 §5.5.3 lets a pong answer the latest ping
    /// only; python-websockets, like this, takes it as answering all earlier ones too).
    /// An unsolicited pong changes nothing.
    mutating func acknowledgePings(_ payload: ByteBuffer) {
        guard let index = timers.outstanding.firstIndex(where: { $0.payload == payload }) else { return }
        let now = timers.lastActivity
        var keepaliveAnswered = false
        for ping in timers.outstanding[...index] {
            if ping.isKeepalive {
                keepaliveAnswered = true
            } else {
                timers.acknowledged.append(AcknowledgedPing(payload: ping.payload, roundTrip: now - ping.sentAt))
                timers.outstandingApplicationPings -= 1
            }
        }
        timers.outstanding.removeFirst(index + 1)
        guard keepaliveAnswered else { return }
        timers.pongDeadline = nil
        if state == .open, !timers.stopped, let interval = configuration.pingInterval {
            timers.nextPing = now + interval
        }
        timers.refresh()
    }

    /// The peer's close frame arrived (called by ``handleClose(_:)`` after the state changed to
    /// closed). A server closes the transport now (``shouldCloseTransport``): no timer is left.
    /// A client waits for the server to close the transport (RFC 6455 §7.1.1), up to the close
    /// timeout from the time of this input (or from its own close, if that was earlier).
    mutating func timersAfterPeerClose() {
        if role == .server {
            timers.disarmAll()
        } else {
            timers.disarmOpenTimers()
            armCloseTimeout(from: timers.lastActivity)
        }
    }
}
