import NIOCore
import Testing
@testable import DuplexCore

// The time rules of a Connection (keepalive, pong timeout, idle, close timeout, application
// pings) with virtual time: every instant is given by the test; nothing waits.

/// The instant `ms` milliseconds (plus `ns` nanoseconds) after the origin.
private func at(_ ms: UInt64, ns: UInt64 = 0) -> Connection.Instant {
    Connection.Instant(nanoseconds: ms * 1_000_000 + ns)
}

/// Feeds `bytes` in one piece at `now` and collects the events.
private func feed(_ connection: inout Connection, _ bytes: [UInt8], at now: Connection.Instant) -> [ConnectionEvent] {
    connection.receive(ByteBuffer(bytes: bytes), at: now)
    return drain(&connection)
}

/// The frames a connection queued, masks dropped (a client picks random keys).
private func sent(_ connection: inout Connection, sourceLocation: SourceLocation = #_sourceLocation) -> [Frame] {
    decodeFrames(sentBy: connection.role, connection.takeOutbound(), sourceLocation: sourceLocation).map {
        var frame = $0
        #expect((frame.maskKey != nil) == (connection.role == .client), sourceLocation: sourceLocation)
        frame.maskKey = nil
        return frame
    }
}

/// The payload of the `n`th keepalive ping: the counter's 8 big-endian bytes.
private func keepalive(_ n: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: n >> (56 - 8 * $0)) }
}

private func pingFrame(_ payload: [UInt8]) -> Frame { Frame(opcode: .ping, payload: ByteBuffer(bytes: payload)) }

private func closeFrame(_ code: UInt16, _ reason: String) -> Frame {
    Frame(opcode: .close, payload: ByteBuffer(bytes: [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8)))
}

/// A pong from the peer of `role`.
private func pong(to role: Role, _ payload: [UInt8]) -> [UInt8] { Wire.frame(to: role, .pong, payload) }

private func acknowledged(_ connection: inout Connection) -> [Connection.AcknowledgedPing] {
    var pings: [Connection.AcknowledgedPing] = []
    while let ping = connection.nextAcknowledgedPing() { pings.append(ping) }
    return pings
}

private func ack(_ payload: String, _ roundTrip: Duration) -> Connection.AcknowledgedPing {
    Connection.AcknowledgedPing(payload: ByteBuffer(string: payload), roundTrip: roundTrip)
}

@Suite struct ConnectionTimerTests {
    // MARK: - Instant and configuration

    @Test func instantArithmetic() {
        let t = Connection.Instant(nanoseconds: 1_000)
        #expect(t + .nanoseconds(500) == Connection.Instant(nanoseconds: 1_500))
        #expect(t + .seconds(2) == Connection.Instant(nanoseconds: 2_000_001_000))
        #expect(t + .milliseconds(-1) == Connection.Instant(nanoseconds: 0))  // saturates at 0
        #expect(t + .nanoseconds(-400) == Connection.Instant(nanoseconds: 600))
        #expect(Connection.Instant(nanoseconds: .max - 10) + .seconds(1) == Connection.Instant(nanoseconds: .max))
        #expect(t + .seconds(Int64.max) == Connection.Instant(nanoseconds: .max))  // Duration's nanoseconds overflow Int64
        #expect(t + .seconds(Int64.min) == Connection.Instant(nanoseconds: 0))
        #expect(Connection.Instant(nanoseconds: .max) + .seconds(Int64.min) == Connection.Instant(nanoseconds: 0))
        #expect(at(5_000) + .milliseconds(-1_500) == at(3_500))
        #expect(at(5_000) + .nanoseconds(-1_500_000_001) == at(3_500) + .nanoseconds(-1))
        #expect(t + Duration(secondsComponent: 0, attosecondsComponent: -999_999_999) == t)
        #expect(t + Duration(secondsComponent: 0, attosecondsComponent: 999_999_999) == t)  // < 1 ns: truncated
        #expect(Connection.Instant(nanoseconds: 2_500_000_000) - t == .nanoseconds(2_499_999_000))
        #expect(t - Connection.Instant(nanoseconds: 3_000) == .nanoseconds(-2_000))
        #expect(Connection.Instant(nanoseconds: .max) - Connection.Instant(nanoseconds: 0) == .nanoseconds(UInt64.max))
        #expect(t - t == .zero)
        #expect(t < Connection.Instant(nanoseconds: 1_001) && !(t < t))
        #expect([at(3), at(1), at(2)].sorted() == [at(1), at(2), at(3)])
    }

    @Test func configurationDefaultsHaveNoTimers() {
        let defaults = Connection.Configuration()
        #expect(defaults.pingInterval == nil)
        #expect(defaults.pongTimeout == .seconds(20))
        #expect(defaults.pongTimeoutAction == .close(.internalError))
        #expect(defaults.idleTimeout == nil)
        #expect(defaults.closeTimeout == nil)
        let old = Connection.Configuration(limits: .default, autoPong: false)  // the original initializer
        #expect(!old.autoPong && old.pingInterval == nil && old.closeTimeout == nil)
        let all = Connection.Configuration(
            limits: .default, autoPong: true, pingInterval: .seconds(1), pongTimeout: .seconds(2),
            pongTimeoutAction: .dropTransport, idleTimeout: .seconds(3), closeTimeout: .seconds(4)
        )
        #expect(all.pingInterval == .seconds(1) && all.pongTimeout == .seconds(2) && all.pongTimeoutAction == .dropTransport)
        #expect(all.idleTimeout == .seconds(3) && all.closeTimeout == .seconds(4))
    }

    /// Timers off: start, timed input and timerFired change nothing; closing arms nothing.
    @Test(arguments: [Role.client, .server])
    func defaultsArmNothing(role: Role) throws {
        var connection = Connection(role: role)
        #expect(connection.nextDeadline == nil)
        connection.start(at: at(0))
        #expect(connection.nextDeadline == nil)
        #expect(feed(&connection, Wire.frame(to: role, .text, "hi"), at: at(10)) == [.text(ByteBuffer(string: "hi"))])
        connection.timerFired(at: at(1_000_000_000))
        #expect(connection.takeOutbound() == nil && connection.state == .open && !connection.shouldCloseTransport)
        try connection.close(code: .normalClosure, reason: "bye", at: at(20))
        #expect(sent(&connection) == [closeFrame(1000, "bye")])
        #expect(connection.nextDeadline == nil)
        connection.timerFired(at: at(1_000_000_000))
        #expect(!connection.shouldCloseTransport)
    }

    // MARK: - Keepalive

    @Test(arguments: [Role.client, .server])
    func keepaliveCycle(role: Role) {
        var connection = Connection(role: role, configuration: .init(pingInterval: .seconds(10), pongTimeout: .seconds(3)))
        #expect(connection.nextDeadline == nil)  // not started
        connection.start(at: at(1_000))
        #expect(connection.nextDeadline == at(11_000))
        // Early: nothing, and the deadline stays.
        connection.timerFired(at: at(11_000) + .nanoseconds(-1))
        #expect(connection.takeOutbound() == nil)
        #expect(connection.nextDeadline == at(11_000))
        // Due (a late call counts from the actual time).
        connection.timerFired(at: at(11_005))
        #expect(sent(&connection) == [pingFrame(keepalive(1))])
        #expect(connection.nextDeadline == at(14_005))  // the pong deadline
        // The pong: the next ping is due an interval after it arrived.
        #expect(feed(&connection, pong(to: role, keepalive(1)), at: at(12_000)) == [.pong(ByteBuffer(bytes: keepalive(1)))])
        #expect(connection.nextDeadline == at(22_000))
        #expect(connection.nextAcknowledgedPing() == nil)  // keepalive pings are never reported
        connection.timerFired(at: at(14_005))  // the old pong deadline: nothing
        #expect(connection.takeOutbound() == nil && connection.state == .open)
        connection.timerFired(at: at(22_000))
        #expect(sent(&connection) == [pingFrame(keepalive(2))])  // a fresh payload
        #expect(connection.nextDeadline == at(25_000))
    }

    @Test func keepalivePingBytesAreExact() {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(1)))
        server.start(at: at(0))
        server.timerFired(at: at(1_000))
        #expect(server.takeOutbound()?.bytes == [0x89, 0x08, 0, 0, 0, 0, 0, 0, 0, 1])
    }

    /// A pong whose payload matches no outstanding ping neither answers the keepalive nor moves it.
    @Test func unsolicitedPongChangesNothing() {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(10), pongTimeout: .seconds(5)))
        server.start(at: at(0))
        #expect(feed(&server, pong(to: .server, keepalive(1)), at: at(1_000)) == [.pong(ByteBuffer(bytes: keepalive(1)))])
        #expect(server.nextDeadline == at(10_000))  // not moved
        server.timerFired(at: at(10_000))
        #expect(sent(&server) == [pingFrame(keepalive(1))])
        _ = feed(&server, pong(to: .server, Array("heartbeat".utf8)), at: at(11_000))
        _ = feed(&server, pong(to: .server, keepalive(2)), at: at(12_000))
        #expect(server.nextDeadline == at(15_000))  // still the pong deadline
        server.timerFired(at: at(15_000))
        #expect(sent(&server) == [closeFrame(1011, "keepalive ping timeout")])
        #expect(server.state == .closing)
    }

    /// A pong answers its ping and every earlier one, across application and keepalive pings.
    @Test func pongAnswersEarlierPingsOnly() throws {
        var client = Connection(role: .client, configuration: .init(pingInterval: .seconds(10), pongTimeout: .seconds(30)))
        client.start(at: at(0))
        try client.ping(ByteBuffer(string: "a"), at: at(1_000))
        try client.ping(ByteBuffer(string: "b"), at: at(2_000))
        client.timerFired(at: at(10_000))  // keepalive 1
        try client.ping(ByteBuffer(string: "c"), at: at(11_000))
        #expect(sent(&client) == [pingFrame(Array("a".utf8)), pingFrame(Array("b".utf8)), pingFrame(keepalive(1)),
                                  pingFrame(Array("c".utf8))])
        // "b" answers "a" and "b", not the later keepalive or "c".
        _ = feed(&client, pong(to: .client, Array("b".utf8)), at: at(12_000))
        #expect(acknowledged(&client) == [ack("a", .seconds(11)), ack("b", .seconds(10))])
        #expect(client.nextDeadline == at(40_000))  // the keepalive's pong deadline
        // "b" again: no longer outstanding.
        _ = feed(&client, pong(to: .client, Array("b".utf8)), at: at(12_500))
        #expect(acknowledged(&client).isEmpty)
        // "c" answers the keepalive (sent earlier) and "c"; the next ping counts from this pong.
        _ = feed(&client, pong(to: .client, Array("c".utf8)), at: at(13_000))
        #expect(acknowledged(&client) == [ack("c", .seconds(2))])
        #expect(client.nextDeadline == at(23_000))
        #expect(client.timers.outstanding.isEmpty && client.timers.outstandingApplicationPings == 0)
    }

    /// A keepalive pong answers the application pings sent before it, but reports only them.
    @Test func keepalivePongAnswersEarlierApplicationPings() throws {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(5)))
        server.start(at: at(0))
        try server.ping(ByteBuffer(string: "x"), at: at(4_000))
        server.timerFired(at: at(5_000))
        try server.ping(ByteBuffer(string: "y"), at: at(5_500))
        _ = server.takeOutbound()
        _ = feed(&server, pong(to: .server, keepalive(1)), at: at(6_000))
        #expect(acknowledged(&server) == [ack("x", .seconds(2))])
        #expect(server.nextDeadline == at(11_000))
        _ = feed(&server, pong(to: .server, Array("y".utf8)), at: at(6_250))
        #expect(acknowledged(&server) == [ack("y", .milliseconds(750))])
        #expect(server.nextDeadline == at(11_000))  // the keepalive was already answered
    }

    /// The events of one read all carry that read's instant; round trips are exact to the nanosecond.
    @Test func roundTripIsExact() throws {
        var server = Connection(role: .server)
        try server.ping(ByteBuffer(string: "1"), at: at(1_000, ns: 123))
        try server.ping(ByteBuffer(string: "2"), at: at(1_100, ns: 7))
        _ = server.takeOutbound()
        let events = feed(&server, pong(to: .server, Array("1".utf8)) + Wire.frame(to: .server, .text, "t")
                          + pong(to: .server, Array("2".utf8)), at: at(1_250, ns: 456))
        #expect(events == [.pong(ByteBuffer(string: "1")), .text(ByteBuffer(string: "t")), .pong(ByteBuffer(string: "2"))])
        #expect(acknowledged(&server) == [ack("1", .nanoseconds(250_000_333)), ack("2", .nanoseconds(150_000_449))])
    }

    /// Two connections in virtual time: the client's automatic pong answers the server's keepalive.
    @Test func keepaliveBetweenTwoConnections() {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(30), pongTimeout: .seconds(20)))
        var client = Connection(role: .client)
        server.start(at: at(0))
        client.start(at: at(0))
        for round: UInt64 in 1...3 {
            let pingTime = at(30_000 * round + 100 * (round - 1))
            #expect(server.nextDeadline == pingTime)
            server.timerFired(at: pingTime)
            let ping = server.takeOutbound()!
            #expect(feed(&client, ping.bytes, at: pingTime + .milliseconds(40)) == [.ping(ByteBuffer(bytes: keepalive(round)))])
            let answer = client.takeOutbound()!
            #expect(feed(&server, answer.bytes, at: pingTime + .milliseconds(100)) == [.pong(ByteBuffer(bytes: keepalive(round)))])
            #expect(server.nextDeadline == pingTime + .milliseconds(100) + .seconds(30))
        }
        #expect(server.state == .open && client.state == .open)
    }

    /// Once the connection is not open, no keepalive ping is sent.
    @Test(arguments: [Role.client, .server])
    func noPingsOnceNotOpen(role: Role) throws {
        // Closed by this side.
        var closing = Connection(role: role, configuration: .init(pingInterval: .seconds(1)))
        closing.start(at: at(0))
        try closing.close()
        _ = closing.takeOutbound()
        #expect(closing.nextDeadline == nil)
        closing.timerFired(at: at(1_000))
        #expect(closing.takeOutbound() == nil)
        // Closed by the peer.
        var closed = Connection(role: role, configuration: .init(pingInterval: .seconds(1)))
        closed.start(at: at(0))
        _ = feed(&closed, Wire.close(to: role, code: 1000), at: at(500))
        _ = closed.takeOutbound()
        #expect(closed.nextDeadline == nil)
        closed.timerFired(at: at(1_000))
        #expect(closed.takeOutbound() == nil)
        // A pong for the keepalive arriving while closing does not re-arm it.
        var answered = Connection(role: role, configuration: .init(pingInterval: .seconds(1)))
        answered.start(at: at(0))
        answered.timerFired(at: at(1_000))
        try answered.close()
        _ = answered.takeOutbound()
        _ = feed(&answered, pong(to: role, keepalive(1)), at: at(1_100))
        #expect(answered.nextDeadline == nil)
        // Failed.
        var failed = Connection(role: role, configuration: .init(pingInterval: .seconds(1), idleTimeout: .seconds(1), closeTimeout: .seconds(1)))
        failed.start(at: at(0))
        #expect(failure(in: feed(&failed, Wire.frame(to: role, .text, [0xFF]), at: at(10))) == ProtocolError(.invalidUTF8))
        _ = failed.takeOutbound()
        #expect(failed.nextDeadline == nil && failed.shouldCloseTransport)
    }

    /// A keepalive payload never repeats an outstanding application ping's.
    @Test func keepalivePayloadAvoidsApplicationPayloads() throws {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(1)))
        server.start(at: at(0))
        try server.ping(ByteBuffer(bytes: keepalive(1)), at: at(500))
        server.timerFired(at: at(1_000))
        #expect(sent(&server) == [pingFrame(keepalive(1)), pingFrame(keepalive(2))])
        // And an application ping may not repeat the keepalive's.
        #expect(throws: SendError.duplicatePingPayload) { try server.ping(ByteBuffer(bytes: keepalive(2)), at: at(1_100)) }
    }

    // MARK: - Pong timeout

    @Test(arguments: [Role.client, .server])
    func pongTimeoutCloses(role: Role) {
        let configuration = Connection.Configuration(
            pingInterval: .seconds(10), pongTimeout: .seconds(5), pongTimeoutAction: .close(CloseCode(4000)),
            closeTimeout: .seconds(2)
        )
        var connection = Connection(role: role, configuration: configuration)
        connection.start(at: at(0))
        connection.timerFired(at: at(10_000))
        _ = connection.takeOutbound()
        connection.timerFired(at: at(14_999))
        #expect(connection.takeOutbound() == nil && connection.state == .open)
        connection.timerFired(at: at(15_000))
        #expect(sent(&connection) == [closeFrame(4000, "keepalive ping timeout")])
        #expect(connection.state == .closing)
        #expect(connection.closeSent == CloseFrame(code: CloseCode(4000), reason: "keepalive ping timeout"))
        #expect(!connection.shouldCloseTransport)
        // The close timeout runs from the pong timeout; no more pings.
        #expect(connection.nextDeadline == at(17_000))
        connection.timerFired(at: at(16_999))
        #expect(!connection.shouldCloseTransport)
        connection.timerFired(at: at(17_000))
        #expect(connection.shouldCloseTransport)
        #expect(connection.takeOutbound() == nil)
        #expect(connection.nextDeadline == nil)
        #expect(connection.closeResult == CloseFrame(code: .abnormalClosure))
        #expect(!connection.endedCleanly)
    }

    /// The peer answers the timeout's close frame: a clean end, with the peer's echo as the result.
    @Test func pongTimeoutCloseAnswered() {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(1), pongTimeout: .seconds(1), closeTimeout: .seconds(5)))
        server.start(at: at(0))
        server.timerFired(at: at(1_000))
        server.timerFired(at: at(2_000))
        #expect(sent(&server) == [pingFrame(keepalive(1)), closeFrame(1011, "keepalive ping timeout")])  // default 1011
        #expect(server.nextDeadline == at(7_000))
        _ = feed(&server, Wire.close(to: .server, code: 1011), at: at(2_500))
        #expect(server.shouldCloseTransport && server.endedCleanly)
        #expect(server.nextDeadline == nil)
        #expect(server.closeResult == CloseFrame(code: .internalError))
    }

    /// A code that may not be sent becomes 1011.
    @Test func pongTimeoutWithUnsendableCode() {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(1), pongTimeout: .seconds(1),
                                                                     pongTimeoutAction: .close(.abnormalClosure)))
        server.start(at: at(0))
        server.timerFired(at: at(1_000))
        server.timerFired(at: at(2_000))
        #expect(sent(&server) == [pingFrame(keepalive(1)), closeFrame(1011, "keepalive ping timeout")])
    }

    @Test(arguments: [Role.client, .server])
    func pongTimeoutDropsTransport(role: Role) throws {
        let configuration = Connection.Configuration(
            pingInterval: .seconds(10), pongTimeout: .seconds(5), pongTimeoutAction: .dropTransport,
            idleTimeout: .seconds(60), closeTimeout: .seconds(2)
        )
        var connection = Connection(role: role, configuration: configuration)
        connection.start(at: at(0))
        connection.timerFired(at: at(10_000))
        _ = connection.takeOutbound()
        connection.timerFired(at: at(15_000))
        #expect(connection.shouldCloseTransport)
        #expect(connection.takeOutbound() == nil)  // no close frame
        #expect(connection.state == .closed)
        #expect(connection.closeSent == nil)
        #expect(connection.closeResult == CloseFrame(code: .abnormalClosure, reason: "keepalive ping timeout"))
        #expect(!connection.endedCleanly && !connection.isCleanlyClosed)
        #expect(connection.nextDeadline == nil)
        #expect(throws: SendError.notOpen) { try connection.send(text: "x") }
        #expect(throws: SendError.notOpen) { try connection.ping(ByteBuffer(string: "p"), at: at(15_001)) }
        // Bytes still in flight change neither the result nor the decision.
        _ = feed(&connection, Wire.close(to: role, code: 1000), at: at(15_010))
        #expect(connection.takeOutbound() == nil)
        #expect(connection.shouldCloseTransport && !connection.endedCleanly)
        #expect(connection.closeResult.code == .abnormalClosure)
        connection.transportClosed()
        #expect(connection.closeResult.code == .abnormalClosure)
    }

    // MARK: - Idle

    @Test(arguments: [Role.client, .server])
    func idleTimeoutMovedByTraffic(role: Role) {
        var connection = Connection(role: role, configuration: .init(idleTimeout: .seconds(30), closeTimeout: .seconds(5)))
        connection.start(at: at(0))
        #expect(connection.nextDeadline == at(30_000))
        // Receiving does not recompute the deadline...
        _ = feed(&connection, Wire.frame(to: role, .text, "a"), at: at(10_000))
        #expect(connection.nextDeadline == at(30_000))
        // ...the check moves it.
        connection.timerFired(at: at(30_000))
        #expect(connection.takeOutbound() == nil && connection.state == .open)
        #expect(connection.nextDeadline == at(40_000))
        _ = feed(&connection, Wire.frame(to: role, .ping, "p"), at: at(35_000))  // any frame is activity
        _ = connection.takeOutbound()
        connection.timerFired(at: at(39_999))  // early: nothing, not even a move
        #expect(connection.nextDeadline == at(40_000))
        connection.timerFired(at: at(40_000))
        #expect(connection.nextDeadline == at(65_000))
        connection.timerFired(at: at(65_000))
        #expect(sent(&connection) == [closeFrame(1001, "idle timeout")])
        #expect(connection.state == .closing)
        #expect(connection.closeSent == CloseFrame(code: .goingAway, reason: "idle timeout"))
        #expect(connection.nextDeadline == at(70_000))  // the close timeout
        connection.timerFired(at: at(70_000))
        #expect(connection.shouldCloseTransport)
    }

    /// Idle from start with no input at all; bytes that are part of a frame count too.
    @Test func idleTimeoutFromStartAndPartialFrames() {
        var quiet = Connection(role: .server, configuration: .init(idleTimeout: .seconds(1)))
        quiet.start(at: at(5_000))
        quiet.timerFired(at: at(5_999))
        #expect(quiet.takeOutbound() == nil)
        quiet.timerFired(at: at(6_000))
        #expect(sent(&quiet) == [closeFrame(1001, "idle timeout")])
        #expect(quiet.nextDeadline == nil)  // no close timeout configured

        var trickle = Connection(role: .server, configuration: .init(idleTimeout: .seconds(1)))
        trickle.start(at: at(0))
        let frame = Wire.frame(to: .server, .text, "slow")
        #expect(feed(&trickle, Array(frame[..<3]), at: at(900)) == [])
        trickle.timerFired(at: at(1_000))
        #expect(trickle.takeOutbound() == nil)
        #expect(trickle.nextDeadline == at(1_900))
    }

    /// With keepalive and idle both armed, the deadline is the earlier one.
    @Test func earliestOfSeveralTimers() {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(10), pongTimeout: .seconds(10),
                                                                     idleTimeout: .seconds(15)))
        server.start(at: at(0))
        #expect(server.nextDeadline == at(10_000))
        server.timerFired(at: at(10_000))
        #expect(sent(&server) == [pingFrame(keepalive(1))])
        #expect(server.nextDeadline == at(15_000))  // idle before the pong deadline (20 s)
        _ = feed(&server, pong(to: .server, keepalive(1)), at: at(12_000))
        #expect(server.nextDeadline == at(15_000))
        server.timerFired(at: at(15_000))
        #expect(server.nextDeadline == at(22_000))  // next ping; idle check moved to 27 s
        server.timerFired(at: at(22_000))
        #expect(sent(&server) == [pingFrame(keepalive(2))])
        #expect(server.nextDeadline == at(27_000))
        server.timerFired(at: at(27_000))  // nothing received since 12 s: idle
        #expect(sent(&server) == [closeFrame(1001, "idle timeout")])
        #expect(server.nextDeadline == nil)  // closing: no keepalive, no pong deadline, no close timeout
    }

    /// Timers due at the same instant: one close, no ping after it.
    @Test func simultaneousTimersCloseOnce() {
        var idle = Connection(role: .server, configuration: .init(pingInterval: .seconds(10), idleTimeout: .seconds(10)))
        idle.start(at: at(0))
        idle.timerFired(at: at(10_000))
        #expect(sent(&idle) == [closeFrame(1001, "idle timeout")])

        var both = Connection(role: .server, configuration: .init(pingInterval: .seconds(10), pongTimeout: .seconds(10),
                                                                   idleTimeout: .seconds(20), closeTimeout: .seconds(1)))
        both.start(at: at(0))
        both.timerFired(at: at(10_000))
        #expect(sent(&both) == [pingFrame(keepalive(1))])
        both.timerFired(at: at(20_000))  // pong deadline and idle together: the pong timeout's close
        #expect(sent(&both) == [closeFrame(1011, "keepalive ping timeout")])
        #expect(both.nextDeadline == at(21_000))
    }

    // MARK: - Close timeout

    @Test(arguments: [Role.client, .server])
    func closeTimeoutAfterApplicationClose(role: Role) throws {
        var connection = Connection(role: role, configuration: .init(closeTimeout: .seconds(5)))
        connection.start(at: at(0))
        #expect(connection.nextDeadline == nil)
        try connection.close(code: .goingAway, reason: "bye", at: at(100_000))
        #expect(sent(&connection) == [closeFrame(1001, "bye")])
        #expect(connection.nextDeadline == at(105_000))
        // Data still arriving does not extend it.
        _ = feed(&connection, Wire.frame(to: role, .text, "late"), at: at(104_000))
        connection.timerFired(at: at(104_999))
        #expect(!connection.shouldCloseTransport)
        connection.timerFired(at: at(105_000))
        #expect(connection.shouldCloseTransport)
        #expect(connection.nextDeadline == nil)
        #expect(connection.closeResult == CloseFrame(code: .abnormalClosure))
        #expect(!connection.endedCleanly)
        // A second close arms nothing more.
        try connection.close(code: .normalClosure, reason: "", at: at(106_000))
        #expect(connection.nextDeadline == nil && connection.takeOutbound() == nil)
    }

    /// Validation errors throw before anything is armed; a close while closing arms nothing.
    @Test func closeAtValidatesAndArmsOnce() throws {
        var server = Connection(role: .server, configuration: .init(closeTimeout: .seconds(1)))
        #expect(throws: SendError.invalidCloseCode(.abnormalClosure)) { try server.close(code: .abnormalClosure, reason: "", at: at(0)) }
        #expect(server.nextDeadline == nil && server.state == .open)
        try server.close()  // the untimed close arms nothing
        #expect(server.nextDeadline == nil)
        try server.close(code: .normalClosure, reason: "", at: at(10))
        #expect(server.nextDeadline == nil)
        // An empty close frame.
        var empty = Connection(role: .server, configuration: .init(closeTimeout: .seconds(1)))
        try empty.close(code: nil, reason: "", at: at(0))
        #expect(sent(&empty) == [Frame(opcode: .close, payload: ByteBuffer())])
        #expect(empty.nextDeadline == at(1_000))
    }

    /// A server whose close the client answers closes the transport at once: no timer left.
    @Test func serverCloseAnsweredDisarms() throws {
        var server = Connection(role: .server, configuration: .init(closeTimeout: .seconds(5)))
        try server.close(code: .normalClosure, reason: "", at: at(0))
        _ = feed(&server, Wire.close(to: .server, code: 1000), at: at(1_000))
        #expect(server.shouldCloseTransport && server.endedCleanly)
        #expect(server.nextDeadline == nil)
    }

    /// A client that completed the closing handshake waits for the server to close TCP, up to
    /// the close timeout from the input that carried the server's close frame.
    @Test func clientWaitsForServerAfterHandshake() {
        var client = Connection(role: .client, configuration: .init(pingInterval: .seconds(100), closeTimeout: .seconds(5)))
        client.start(at: at(0))
        #expect(feed(&client, Wire.close(to: .client, code: 1001, reason: Array("restart".utf8)), at: at(50_000))
                == [.close(CloseFrame(code: .goingAway, reason: "restart"))])
        #expect(sent(&client) == [closeFrame(1001, "")])  // the echo
        #expect(client.state == .closed && !client.shouldCloseTransport)
        #expect(client.nextDeadline == at(55_000))  // the keepalive is gone
        client.timerFired(at: at(54_999))
        #expect(!client.shouldCloseTransport)
        client.timerFired(at: at(55_000))
        #expect(client.shouldCloseTransport)
        #expect(client.endedCleanly)  // the server's close frame arrived
        #expect(client.closeResult == CloseFrame(code: .goingAway, reason: "restart"))
    }

    /// A client that started the close keeps the deadline of its own close frame.
    @Test func clientInitiatedCloseKeepsTheEarlierDeadline() throws {
        var client = Connection(role: .client, configuration: .init(closeTimeout: .seconds(5)))
        client.start(at: at(0))
        try client.close(code: .normalClosure, reason: "", at: at(10_000))
        _ = client.takeOutbound()
        _ = feed(&client, Wire.close(to: .client, code: 1000), at: at(12_000))
        #expect(client.state == .closed && !client.shouldCloseTransport)
        #expect(client.nextDeadline == at(15_000))
        client.timerFired(at: at(15_000))
        #expect(client.shouldCloseTransport && client.endedCleanly)
        // Closed with the untimed close: the handshake's completion arms it.
        var untimed = Connection(role: .client, configuration: .init(closeTimeout: .seconds(5)))
        try untimed.close()
        _ = feed(&untimed, Wire.close(to: .client, code: 1000), at: at(12_000))
        #expect(untimed.nextDeadline == at(17_000))
    }

    // MARK: - After the transport closed

    @Test(arguments: [Role.client, .server])
    func nothingAfterTransportClosed(role: Role) throws {
        let configuration = Connection.Configuration(pingInterval: .seconds(1), pongTimeout: .seconds(1),
                                                     idleTimeout: .seconds(1), closeTimeout: .seconds(1))
        var connection = Connection(role: role, configuration: configuration)
        connection.start(at: at(0))
        connection.timerFired(at: at(1_000))
        try connection.close(code: .normalClosure, reason: "", at: at(1_200))
        _ = connection.takeOutbound()
        #expect(connection.nextDeadline != nil)
        connection.transportClosed()
        #expect(connection.nextDeadline == nil)
        connection.timerFired(at: at(1_000_000))
        #expect(connection.takeOutbound() == nil)
        #expect(connection.nextDeadline == nil)
        #expect(connection.shouldCloseTransport == (role == .server))  // unchanged: the server's rule only
        connection.start(at: at(2_000_000))
        #expect(connection.nextDeadline == nil)
        _ = feed(&connection, Wire.close(to: role, code: 1000), at: at(2_000_001))
        #expect(connection.nextDeadline == nil)
        #expect(throws: SendError.notOpen) { try connection.ping(ByteBuffer(string: "p"), at: at(2_000_002)) }
        // Before start, too.
        var never = Connection(role: role, configuration: configuration)
        never.transportClosed()
        never.start(at: at(0))
        #expect(never.nextDeadline == nil)
    }

    // MARK: - Application pings

    @Test func outstandingPingLimit() throws {
        var server = Connection(role: .server, configuration: .init(pingInterval: .seconds(1)))
        server.start(at: at(0))
        for i in 0..<Connection.maxOutstandingPings {
            try server.ping(ByteBuffer(string: "\(i)"), at: at(UInt64(i)))
        }
        #expect(Connection.maxOutstandingPings == 32)
        #expect(throws: SendError.tooManyOutstandingPings(limit: 32)) { try server.ping(ByteBuffer(string: "more"), at: at(100)) }
        // The keepalive does not count against the limit.
        server.timerFired(at: at(1_000))
        let frames = sent(&server)
        #expect(frames.count == 33 && frames.last == pingFrame(keepalive(1)))
        // Answering the third frees three places.
        _ = feed(&server, pong(to: .server, Array("2".utf8)), at: at(1_500))
        #expect(acknowledged(&server).map(\.payload) == ["0", "1", "2"].map { ByteBuffer(string: $0) })
        for i in 0..<3 { try server.ping(ByteBuffer(string: "new\(i)"), at: at(1_600)) }
        #expect(throws: SendError.tooManyOutstandingPings(limit: 32)) { try server.ping(ByteBuffer(string: "more"), at: at(1_700)) }
        #expect(SendError.tooManyOutstandingPings(limit: 32).description == "32 pings are already waiting for their pong")
    }

    @Test func duplicatePayloadRefused() throws {
        var client = Connection(role: .client)
        try client.ping(ByteBuffer(string: "same"), at: at(0))
        #expect(throws: SendError.duplicatePingPayload) { try client.ping(ByteBuffer(string: "same"), at: at(1)) }
        try client.ping(ByteBuffer(), at: at(2))
        #expect(throws: SendError.duplicatePingPayload) { try client.ping(ByteBuffer(), at: at(3)) }
        #expect(sent(&client) == [pingFrame(Array("same".utf8)), pingFrame([])])
        // Once answered, the payload may be used again.
        _ = feed(&client, pong(to: .client, Array("same".utf8)), at: at(10))
        #expect(acknowledged(&client) == [ack("same", .milliseconds(10))])
        try client.ping(ByteBuffer(string: "same"), at: at(20))
        _ = feed(&client, pong(to: .client, Array("same".utf8)), at: at(25))
        // The empty ping was sent before the second "same": answered too.
        #expect(acknowledged(&client) == [ack("", .milliseconds(23)), ack("same", .milliseconds(5))])
        #expect(SendError.duplicatePingPayload.description == "a ping with the same payload is already waiting for its pong")
    }

    @Test(arguments: [Role.client, .server])
    func applicationPingRules(role: Role) throws {
        var connection = Connection(role: role)
        #expect(throws: SendError.controlPayloadTooLong(126)) { try connection.ping(ByteBuffer(repeating: 1, count: 126), at: at(0)) }
        try connection.ping(ByteBuffer(repeating: 1, count: 125), at: at(0))
        #expect(sent(&connection) == [Frame(opcode: .ping, payload: ByteBuffer(repeating: 1, count: 125))])
        // Untimed pings are not tracked: their pongs are unsolicited.
        try connection.ping(ByteBuffer(string: "untracked"))
        _ = connection.takeOutbound()
        _ = feed(&connection, pong(to: role, Array("untracked".utf8)), at: at(5))
        #expect(acknowledged(&connection).isEmpty)
        // Pongs still count while closing.
        try connection.close()
        _ = connection.takeOutbound()
        #expect(throws: SendError.notOpen) { try connection.ping(ByteBuffer(string: "late"), at: at(6)) }
        _ = feed(&connection, pong(to: role, [UInt8](repeating: 1, count: 125)), at: at(7))
        #expect(acknowledged(&connection) == [Connection.AcknowledgedPing(payload: ByteBuffer(repeating: 1, count: 125),
                                                                          roundTrip: .milliseconds(7))])
    }

    // MARK: - endedCleanly

    @Test(arguments: [Role.client, .server])
    func endedCleanly(role: Role) throws {
        var peerClosed = Connection(role: role)
        #expect(!peerClosed.endedCleanly)
        _ = feed(&peerClosed, Wire.close(to: role, code: 1000), at: at(0))
        #expect(peerClosed.endedCleanly)
        peerClosed.transportClosed()
        #expect(peerClosed.endedCleanly)

        var selfClosed = Connection(role: role)
        try selfClosed.close()
        #expect(!selfClosed.endedCleanly)
        _ = feed(&selfClosed, Wire.close(to: role, code: nil), at: at(0))
        #expect(selfClosed.endedCleanly)

        var failed = Connection(role: role)
        _ = feed(&failed, Wire.close(to: role, code: 999), at: at(0))
        #expect(failed.failure != nil && !failed.endedCleanly)

        var dropped = Connection(role: role)
        try dropped.close()
        dropped.transportClosed()  // no close frame from the peer
        #expect(!dropped.endedCleanly)
    }
}
