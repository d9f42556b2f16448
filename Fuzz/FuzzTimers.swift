// The time rules of a Connection (keepalive pings, pong timeout, idle timeout, close timeout,
// application pings with round trips), driven by a byte-coded program of inputs and instants.
//
// Input: [flags] [ping interval] [pong timeout] [idle timeout] [close timeout] [op, argument]...
//   flags bit 0: client role (else server); bit 1: automatic pongs; bit 2: a pong timeout drops
//   the transport (else closes with bits 3-4's code: 1011, 1001, 1005 (not sendable: 1011 is
//   used), 4000); bit 5: the clock starts 2^40 ns before UInt64.max (saturating arithmetic).
//   Durations (`fuzzDuration`): 0 is "not set" (a zero pong timeout), else (v & 63) units of
//   1 us, 1 ms, 100 ms or 1 h (v >> 6); 255 is Int64.max seconds.
//   Ops (op % 15): advance the clock; start(at:); timerFired(at: now); jump to nextDeadline and
//   fire there, again while nextDeadline is not later (a driver's timer); the peer's pong to
//   an outstanding ping (or to none); the peer's ping; the peer's text message; the peer's close
//   (1000, 1001, empty, 4000, or 1005, which fails the connection); close(code:reason:at:);
//   ping(_:at:) (64 small payloads, 8-byte ones like keepalive payloads, empty, 126 bytes); an
//   untimed send(text:), ping(_:) or pong(_:); a reserved opcode (fails the connection); the
//   peer's pong fed with receive(_:) (no time); transportClosed(); a pong in two pieces with the
//   clock advanced between them.
// Invariants, from a model of the rules kept by the harness:
// - after every input, nextDeadline is no later than the earliest instant the model has
//   something due at (keepalive, pong deadline, idle time, close deadline): the driver wakes in
//   time;
// - after timerFired(at: now) returns, nextDeadline is nil or not before now, and a driver that
//   fires at nextDeadline reaches a later deadline within a few calls;
// - time never makes the connection send after a close: timerFired sends nothing unless the
//   connection was open, and then only a keepalive ping and a close frame; no frame follows a
//   close frame; nothing is sent once shouldCloseTransport is true;
// - shouldCloseTransport, once true, stays true; timerFired makes it true only at the close
//   deadline (close timeout from this side's close, or a client's receipt of the peer's) or on a
//   pong timeout with the drop action, and always at the close deadline;
// - a keepalive ping is sent exactly when one is due (interval after start(at:) or after the
//   pong answering the previous one) and the connection stays open, never two outstanding, with
//   an 8-byte payload greater than the last and unlike any outstanding ping's;
// - an open connection whose keepalive waited pongTimeout, or that received nothing for the idle
//   timeout, is no longer open after timerFired (close code and reason as configured, or the
//   transport dropped with 1006); a close frame from timerFired always has one of these causes;
// - ping(_:at:) fails exactly as the model says (not open, too long, 32 outstanding, duplicate);
//   the outstanding pings are the model's; acknowledged pings come in send order, each answered
//   with every earlier one, with a round trip equal to the receiving input's instant minus the
//   ping's, never negative when the pong came with receive(_:at:). (Through receive(_:) it
//   counts from the last instant given, which can be before the ping: negative, as documented.)
import NIOCore

func fuzzDuration(_ v: UInt8) -> Duration {
    if v == 0xFF { return .seconds(Int64.max) }
    let units: [Duration] = [.microseconds(1), .milliseconds(1), .milliseconds(100), .seconds(3600)]
    return units[Int(v >> 6)] * Int(v & 0x3F)
}

struct TimerModel {
    struct Ping { var payload: [UInt8]; var sentAt: Connection.Instant; var keepalive: Bool }
    var outstanding: [Ping] = []
    var acknowledged: [Connection.AcknowledgedPing] = []
    /// Whether each of `acknowledged` came with a timed receive (an untimed one counts from the
    /// last instant given, which may be before the ping: see `AcknowledgedPing.roundTrip`).
    var acknowledgedTimed: [Bool] = []
    var lastActivity = Connection.Instant(nanoseconds: 0)
    var started = false
    var stopped = false
    var keepaliveDue: Connection.Instant?
    var lastKeepalive: UInt64 = 0
    /// The earliest instant the close timeout counts from.
    var closeArmedAt: Connection.Instant?
}

struct TimerHarness {
    var connection: Connection
    var model = TimerModel()
    var now: Connection.Instant
    let configuration: Connection.Configuration
    let role: Role
    var peerParser: FrameParser
    var sawCloseFrame = false
    var everShouldClose = false

    init(_ header: [UInt8]) {
        let flags = header[0]
        role = flags & 1 != 0 ? .client : .server
        let action: Connection.PongTimeoutAction = flags & 4 != 0
            ? .dropTransport : .close([CloseCode.internalError, .goingAway, CloseCode(1005), CloseCode(4000)][Int(flags >> 3) & 3])
        configuration = Connection.Configuration(
            autoPong: flags & 2 != 0,
            pingInterval: header[1] == 0 ? nil : fuzzDuration(header[1]),
            pongTimeout: fuzzDuration(header[2]),
            pongTimeoutAction: action,
            idleTimeout: header[3] == 0 ? nil : fuzzDuration(header[3]),
            closeTimeout: header[4] == 0 ? nil : fuzzDuration(header[4]))
        connection = Connection(role: role, configuration: configuration)
        now = Connection.Instant(nanoseconds: flags & 0x20 != 0 ? UInt64.max - (1 << 40) : 0)
        // The peer reads what the connection sends.
        peerParser = FrameParser(role: role == .server ? .client : .server, maxFrameSize: Int.max)
    }

    var pongTimeoutCode: CloseCode? {
        if case .close(let code) = configuration.pongTimeoutAction { return code.isValidOnWire ? code : .internalError }
        return nil
    }

    // MARK: The peer

    func peerFrame(_ opcode: Opcode, _ payload: [UInt8]) -> ByteBuffer {
        var bytes = ByteBuffer()
        FrameWriter.write(opcode: opcode, maskKey: role == .server ? MaskKey(0x37, 0xFA, 0x21, 0x3D) : nil,
                          payload: ByteBuffer(bytes: payload), to: &bytes)
        return bytes
    }

    /// The payload of a pong answering the `k`th outstanding ping, or a payload no ping has.
    func pongPayload(_ k: UInt8) -> [UInt8] {
        model.outstanding.isEmpty ? [0xEE, k] : model.outstanding[Int(k) % model.outstanding.count].payload
    }

    mutating func receive(_ bytes: ByteBuffer, timed: Bool) {
        if timed {
            connection.receive(bytes, at: now)
            model.lastActivity = now
        } else {
            connection.receive(bytes)
        }
        while let event = connection.nextEvent() {
            switch event {
            case .pong(let payload): acknowledge(Array(payload.readableBytesView), timed: timed)
            case .close:
                if role == .client { armClose(from: model.lastActivity) }
            default: break
            }
        }
    }

    mutating func acknowledge(_ payload: [UInt8], timed: Bool) {
        guard let index = model.outstanding.firstIndex(where: { $0.payload == payload }) else { return }
        var keepaliveAnswered = false
        for ping in model.outstanding[...index] {
            if ping.keepalive {
                keepaliveAnswered = true
            } else {
                model.acknowledged.append(.init(payload: ByteBuffer(bytes: ping.payload), roundTrip: model.lastActivity - ping.sentAt))
                model.acknowledgedTimed.append(timed)
            }
        }
        model.outstanding.removeFirst(index + 1)
        if keepaliveAnswered, connection.state == .open, !model.stopped, let interval = configuration.pingInterval {
            model.keepaliveDue = model.lastActivity + interval
        }
    }

    mutating func armClose(from instant: Connection.Instant) {
        guard !model.stopped else { return }
        model.closeArmedAt = min(model.closeArmedAt ?? instant, instant)
    }

    // MARK: The connection's outputs

    /// The frames sent since the last call; none after a close frame.
    mutating func takeFrames() -> [Frame] {
        guard let bytes = connection.takeOutbound() else { return [] }
        fuzzCheck(!everShouldClose, "\(bytes.readableBytes) bytes sent after shouldCloseTransport")
        peerParser.append(bytes)
        var frames: [Frame] = []
        do {
            while let frame = try peerParser.nextFrame() {
                fuzzCheck(!sawCloseFrame, "a \(frame.opcode) frame after the close frame")
                if frame.opcode == .close { sawCloseFrame = true }
                frames.append(frame)
            }
        } catch {
            fuzzFail("the sent bytes do not parse: \(error)")
        }
        fuzzCheck(peerParser.bufferedBytes == 0, "a partial frame sent")
        return frames
    }

    /// The earliest instant at which the model says something is due; the connection's
    /// nextDeadline may be earlier (the idle deadline moves lazily), never later.
    func modelEarliestDeadline() -> Connection.Instant? {
        guard !model.stopped else { return nil }
        var due: [Connection.Instant] = []
        if connection.state == .open {
            if let keepalive = model.keepaliveDue { due.append(keepalive) }
            if let ping = model.outstanding.first(where: \.keepalive) { due.append(ping.sentAt + configuration.pongTimeout) }
            if model.started, let idle = configuration.idleTimeout { due.append(model.lastActivity + idle) }
        }
        if !connection.shouldCloseTransport, let armed = model.closeArmedAt, let timeout = configuration.closeTimeout {
            due.append(armed + timeout)
        }
        return due.min()
    }

    func checkDeadline() {
        guard let due = modelEarliestDeadline() else { return }
        fuzzCheck(connection.nextDeadline.map { $0 <= due } ?? false,
                  "nextDeadline \(String(describing: connection.nextDeadline)) but \(due) is due")
    }

    func isExpiredKeepalive(_ ping: TimerModel.Ping) -> Bool { ping.keepalive && ping.sentAt + configuration.pongTimeout <= now }

    /// timerFired(at: now) and the rules of what it may do.
    mutating func fire() {
        let stateBefore = connection.state
        let shouldCloseBefore = connection.shouldCloseTransport
        let expiredKeepalive = model.outstanding.contains(where: isExpiredKeepalive)
        let idle = configuration.idleTimeout.map { model.started && model.lastActivity + $0 <= now } ?? false
        let closeDue = configuration.closeTimeout.flatMap { timeout in model.closeArmedAt.map { $0 + timeout <= now } } ?? false
        let keepaliveDue = model.keepaliveDue.map { $0 <= now } ?? false
        connection.timerFired(at: now)
        let frames = takeFrames()
        if let deadline = connection.nextDeadline { fuzzCheck(deadline >= now, "nextDeadline \(deadline) before now \(now)") }
        if model.stopped {
            fuzzCheck(connection.nextDeadline == nil && frames.isEmpty, "timerFired acted after transportClosed()")
        }
        if stateBefore != .open { fuzzCheck(frames.isEmpty, "timerFired sent \(frames.map(\.opcode)) in state \(stateBefore)") }
        if !model.stopped && closeDue { fuzzCheck(connection.shouldCloseTransport, "the close deadline passed, the transport stays") }
        if !shouldCloseBefore && connection.shouldCloseTransport {
            fuzzCheck(closeDue || expiredKeepalive && configuration.pongTimeoutAction == .dropTransport,
                      "timerFired closed the transport without a cause")
        }
        var keepaliveSent = false
        for frame in frames {
            let payload = Array(frame.payload.readableBytesView)
            switch frame.opcode {
            case .ping:
                fuzzCheck(!keepaliveSent, "two keepalive pings from one timerFired")
                keepaliveSent = true
                fuzzCheck(payload.count == 8, "keepalive payload of \(payload.count) bytes")
                let counter = payload.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                fuzzCheck(counter > model.lastKeepalive, "keepalive counter \(counter) after \(model.lastKeepalive)")
                fuzzCheck(!model.outstanding.contains { $0.payload == payload }, "keepalive payload of an outstanding ping")
                fuzzCheck(!model.outstanding.contains(where: \.keepalive), "a second keepalive ping outstanding")
                model.lastKeepalive = counter
                model.outstanding.append(.init(payload: payload, sentAt: now, keepalive: true))
                model.keepaliveDue = nil
            case .close:
                let close = try? Connection.parseClosePayload(frame.payload)
                if close?.reason == "idle timeout" {
                    fuzzCheck(idle && close?.code == .goingAway, "an idle-timeout close without the idle time")
                } else {
                    fuzzCheck(expiredKeepalive && close?.code == pongTimeoutCode && close?.reason == "keepalive ping timeout",
                              "close frame \(String(describing: close)) from timerFired")
                }
                armClose(from: now)
            default:
                fuzzFail("timerFired sent a \(frame.opcode) frame")
            }
        }
        if stateBefore == .open {
            let open = connection.state == .open
            fuzzCheck(keepaliveSent == (keepaliveDue && open && configuration.pingInterval != nil),
                      "keepalive sent: \(keepaliveSent), due: \(keepaliveDue), open after: \(open)")
            if expiredKeepalive || idle { fuzzCheck(!open, "still open after a pong or idle timeout") }
            // The pong timeout is looked at before the idle time: the drop wins.
            if expiredKeepalive && configuration.pongTimeoutAction == .dropTransport {
                fuzzCheck(connection.state == .closed && connection.shouldCloseTransport && frames.isEmpty
                          && connection.closeResult == CloseFrame(code: .abnormalClosure, reason: "keepalive ping timeout"),
                          "the drop action did not drop")
            }
        }
        checkDeadline()
    }

    // MARK: The program

    mutating func step(_ op: UInt8, _ k: UInt8) {
        let shouldCloseBefore = connection.shouldCloseTransport
        switch op % 15 {
        case 0:
            now = now + fuzzDuration(k)
        case 1:
            if !model.started && !model.stopped {
                model.started = true
                model.lastActivity = now
                if connection.state == .open, let interval = configuration.pingInterval { model.keepaliveDue = now + interval }
            }
            connection.start(at: now)
        case 2:
            fire()
        case 3:
            if let deadline = connection.nextDeadline, deadline > now { now = deadline }
            var calls = 0
            repeat {
                fire()
                calls += 1
            } while calls < 5 && connection.nextDeadline.map { $0 <= now } ?? false
            fuzzCheck(connection.nextDeadline.map { $0 > now } ?? true, "timerFired at \(now) keeps the deadline there")
        case 4:
            receive(peerFrame(.pong, pongPayload(k)), timed: true)
        case 5:
            receive(peerFrame(.ping, Array(repeating: k, count: Int(k % 4))), timed: true)
        case 6:
            receive(peerFrame(.text, Array(repeating: UInt8(ascii: "x"), count: Int(k % 8))), timed: true)
        case 7:
            let payloads: [[UInt8]] = [[0x03, 0xE8], [0x03, 0xE9, 0x62], [], [0x0F, 0xA0], [0x03, 0xED]]
            receive(peerFrame(.close, payloads[Int(k) % payloads.count]), timed: true)
        case 8:
            let code = [CloseCode.normalClosure, nil, .goingAway, CloseCode(1005), CloseCode(4001)][Int(k & 7) % 5]
            let reason = k & 0x80 != 0 ? String(repeating: "r", count: 124) : "bye"
            let wasOpen = connection.state == .open
            let expected: SendError? = if let code, !code.isValidOnWire { .invalidCloseCode(code) }
                                       else if reason.utf8.count > 123 { .closeReasonTooLong(reason.utf8.count) } else { nil }
            do {
                try connection.close(code: code, reason: reason, at: now)
                fuzzCheck(expected == nil, "close(code: \(String(describing: code))) succeeded, expected \(expected!)")
                if wasOpen {
                    fuzzCheck(connection.state == .closing, "state \(connection.state) after close")
                    armClose(from: now)
                }
            } catch {
                fuzzCheck(error == expected, "close failed with \(error), expected \(String(describing: expected))")
            }
        case 9:
            let payload: [UInt8]
            switch k {
            case 0..<0xF0: payload = [k & 0x3F]
            case 0xF0..<0xFE: payload = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(k - 0xEF) >> (56 - 8 * $0)) }
            case 0xFE: payload = Array(repeating: 1, count: 126)
            default: payload = []
            }
            let expected: SendError?
            if connection.state != .open {
                expected = .notOpen
            } else if payload.count > 125 {
                expected = .controlPayloadTooLong(payload.count)
            } else if model.outstanding.filter({ !$0.keepalive }).count >= Connection.maxOutstandingPings {
                expected = .tooManyOutstandingPings(limit: Connection.maxOutstandingPings)
            } else if model.outstanding.contains(where: { $0.payload == payload }) {
                expected = .duplicatePingPayload
            } else {
                expected = nil
            }
            do {
                try connection.ping(ByteBuffer(bytes: payload), at: now)
                fuzzCheck(expected == nil, "ping(_:at:) succeeded, expected \(expected!)")
                model.outstanding.append(.init(payload: payload, sentAt: now, keepalive: false))
            } catch {
                fuzzCheck(error == expected, "ping(_:at:) failed with \(error), expected \(String(describing: expected))")
            }
        case 10:
            let open = connection.state == .open
            do {
                switch k % 3 {
                case 0: try connection.send(text: "hi")
                case 1: try connection.ping(ByteBuffer(bytes: [0xAA, k]))
                default: try connection.pong(ByteBuffer(bytes: [k]))
                }
                fuzzCheck(open, "sent in state \(connection.state)")
            } catch {
                fuzzCheck(!open && error == .notOpen, "send failed with \(error)")
            }
        case 11:
            receive(ByteBuffer(bytes: role == .server ? [0x83, 0x80, 1, 2, 3, 4] : [0x83, 0x00]), timed: true)
        case 12:
            receive(peerFrame(.pong, pongPayload(k)), timed: false)
        case 13:
            connection.transportClosed()
            model.stopped = true
            fuzzCheck(connection.nextDeadline == nil && connection.state == .closed, "armed after transportClosed()")
        default:
            var bytes = peerFrame(.pong, pongPayload(k))
            let first = bytes.readSlice(length: bytes.readableBytes / 2)!
            receive(first, timed: true)
            now = now + fuzzDuration(k)
            receive(bytes, timed: true)
        }
        if op % 15 != 2 && op % 15 != 3 { _ = takeFrames() }
        if connection.state != .open || model.stopped { model.keepaliveDue = nil }
        if model.stopped { fuzzCheck(connection.nextDeadline == nil, "a deadline after transportClosed()") }

        checkDeadline()
        fuzzCheck(!shouldCloseBefore || connection.shouldCloseTransport, "shouldCloseTransport went back to false")
        everShouldClose = everShouldClose || connection.shouldCloseTransport
        fuzzCheck(connection.timers.outstanding.map { Array($0.payload.readableBytesView) } == model.outstanding.map(\.payload),
                  "outstanding pings \(connection.timers.outstanding.map(\.payload)), model \(model.outstanding.map(\.payload))")
        var acknowledged: [Connection.AcknowledgedPing] = []
        while let ping = connection.nextAcknowledgedPing() {
            if acknowledged.count < model.acknowledgedTimed.count && model.acknowledgedTimed[acknowledged.count] {
                fuzzCheck(ping.roundTrip >= .zero, "round trip \(ping.roundTrip)")
            }
            acknowledged.append(ping)
        }
        fuzzCheck(acknowledged == model.acknowledged, "acknowledged \(acknowledged), model \(model.acknowledged)")
        model.acknowledged = []
        model.acknowledgedTimed = []
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 5 else { return 0 }
    var harness = TimerHarness(Array(input[0..<5]))
    var i = 5
    while i + 1 < input.count {
        harness.step(input[i], input[i + 1])
        i += 2
    }
    harness.connection.transportClosed()
    return 0
}
