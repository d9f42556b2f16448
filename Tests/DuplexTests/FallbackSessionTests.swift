@testable import Duplex
import DuplexCore
import NIOCore
import Testing

/// The fallback session's state machine on its own: ids, the outbox and its bounds, replay
/// with `Last-Event-ID`, the one-poll and one-POST rules, heartbeats, poll timeouts, expiry.
@Suite struct FallbackSessionTests {
    typealias Instant = Connection.Instant

    static func at(_ seconds: Double) -> Instant { Instant(nanoseconds: UInt64(seconds * 1e9) + 1_000_000_000) }

    static func session(_ transport: FallbackTransport = .eventStream,
                        _ configuration: HTTPFallbackConfiguration = HTTPFallbackConfiguration()) -> FallbackSession {
        FallbackSession(id: SessionID.make(), transport: transport, configuration: configuration, at: at(0))
    }

    static func text(_ events: [ByteBuffer]) -> String {
        events.map { String(buffer: $0) }.joined()
    }

    @Test func idsHave128RandomBitsAsHex() {
        let ids = (0..<2000).map { _ in SessionID.make() }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { SessionID.isWellFormed($0) && $0.count == 32 })
        // Every hex digit position varies: no fixed bits in the 128.
        for position in 0..<32 {
            let digits = Set(ids.map { $0[$0.index($0.startIndex, offsetBy: position)] })
            #expect(digits.count >= 12, "position \(position) takes only \(digits.count) values")
        }
        #expect(!SessionID.isWellFormed("0123456789ABCDEF0123456789abcdef"))
        #expect(!SessionID.isWellFormed("../../etc"))
    }

    @Test func messagesGetSequenceNumbersAsEventIDs() {
        var session = Self.session()
        let sequences = [
            session.enqueueMessage(isText: true, payload: ByteBuffer(string: "one\ntwo")),
            session.enqueueMessage(isText: false, payload: ByteBuffer(bytes: [0, 1, 2, 255])),
            session.enqueueMessage(isText: true, payload: ByteBuffer(string: "a\r\nb")),
            session.enqueueMessage(isText: true, payload: ByteBuffer()),
        ]
        #expect(sequences == [1, 2, 3, 4])
        _ = session.attach(lastEventID: nil, at: Self.at(1))
        let events = Self.text(session.takeUndelivered(at: Self.at(1)))
        #expect(events == "id: 1\ndata: one\ndata: two\n\n" + "id: 2\nevent: binary\ndata: AAEC/w==\n\n"
                + "id: 3\nevent: text64\ndata: YQ0KYg==\n\n" + "id: 4\nevent: text64\ndata: =\n\n")
        let close = session.enqueueClose(CloseFrame(code: .goingAway, reason: "bye"))
        #expect(close == 5)
        let late = session.enqueueMessage(isText: true, payload: ByteBuffer(string: "late"))
        #expect(late == nil)
        #expect(Self.text(session.takeUndelivered(at: Self.at(2))) == "id: 5\nevent: close\ndata: 1001 bye\n\n")
        #expect(session.closeDelivered)
    }

    @Test func undeliveredBytesFollowTheWaterMarks() {
        var session = Self.session()
        session.setWaterMarks(low: 100, high: 350)
        let payload = ByteBuffer(repeating: UInt8(ascii: "x"), count: 90)
        for _ in 0..<3 { session.enqueueMessage(isText: true, payload: payload) }
        #expect(session.isWritable)  // 3 events of 104 bytes: 312, under the high mark
        session.enqueueMessage(isText: true, payload: payload)
        #expect(!session.isWritable)
        #expect(session.undeliveredBytes == 416)
        _ = session.attach(lastEventID: nil, at: Self.at(1))
        _ = session.takeUndelivered(maxBytes: 250, at: Self.at(1))  // two events go: still over the low mark
        #expect(!session.isWritable)
        _ = session.takeUndelivered(at: Self.at(1))
        #expect(session.isWritable)
        #expect(session.undeliveredBytes == 0)
        #expect(session.retainedBytes > 400)
    }

    @Test func reconnectWithLastEventIDReplaysWhatFollows() throws {
        var session = Self.session()
        for n in 1...5 { session.enqueueMessage(isText: true, payload: ByteBuffer(string: "m\(n)")) }
        let first = try session.attach(lastEventID: nil, at: Self.at(1)).get()
        #expect(Self.text(session.takeUndelivered(at: Self.at(1))).contains("id: 5\n"))
        session.detach(stream: first.stream, at: Self.at(2))
        // The client saw up to 3: 4 and 5 come again, 1-3 are dropped.
        let second = try session.attach(lastEventID: 3, at: Self.at(3)).get()
        #expect(second.lost == nil)
        #expect(second.stream != first.stream)
        #expect(Self.text(session.takeUndelivered(at: Self.at(3))) == "id: 4\ndata: m4\n\nid: 5\ndata: m5\n\n")
        #expect(session.entries.map(\.sequence) == [4, 5])
        // An id this session never sent.
        let attached969 = session.attach(lastEventID: 99, at: Self.at(4))
        #expect(attached969.failure == .unknownEventID(99))
    }

    @Test func replayEndsAfterItsTimeWithALostSignal() throws {
        var configuration = HTTPFallbackConfiguration()
        configuration.replayTime = .seconds(10)
        var session = Self.session(.eventStream, configuration)
        for n in 1...3 { session.enqueueMessage(isText: true, payload: ByteBuffer(string: "m\(n)")) }
        let stream = try session.attach(lastEventID: nil, at: Self.at(0)).get().stream
        _ = session.takeUndelivered(at: Self.at(0))
        session.detach(stream: stream, at: Self.at(1))
        #expect(session.nextDeadline == Self.at(10))
        _ = session.timerFired(at: Self.at(10))
        #expect(session.entries.isEmpty)
        session.enqueueMessage(isText: true, payload: ByteBuffer(string: "m4"))
        let back = try session.attach(lastEventID: 1, at: Self.at(11)).get()
        #expect(back.lost == FallbackSession.Lost(first: 2, last: 3))
        #expect(Self.text(session.takeUndelivered(at: Self.at(11))) == "id: 4\ndata: m4\n\n")
    }

    @Test func replayBufferIsBoundedOldestFirst() throws {
        var configuration = HTTPFallbackConfiguration()
        configuration.replayBufferBytes = 200
        var session = Self.session(.eventStream, configuration)
        _ = try session.attach(lastEventID: nil, at: Self.at(0)).get()
        for n in 1...10 {
            session.enqueueMessage(isText: true, payload: ByteBuffer(repeating: UInt8(ascii: "a"), count: 40 + n % 2))
            _ = session.takeUndelivered(at: Self.at(0))
        }
        #expect(session.retainedBytes <= 200)
        #expect(session.entries.last?.sequence == 10)
        let kept = session.entries.first!.sequence
        #expect(kept > 1)
        let attached7 = session.attach(lastEventID: 0, at: Self.at(1))
        #expect(attached7.success?.lost == FallbackSession.Lost(first: 1, last: kept - 1))
    }

    @Test func oneLongPollAtATimeAndOnePost() throws {
        var session = Self.session(.longPolling)
        _ = try session.attach(lastEventID: nil, at: Self.at(0)).get()
        let attached621 = session.attach(lastEventID: nil, at: Self.at(1))
        #expect(attached621.failure == .pollPending)
        session.detach(stream: 0, at: Self.at(2))
        let attached679 = session.attach(lastEventID: nil, at: Self.at(2))
        #expect(attached679.success != nil)
        let attached426 = session.beginPost(at: Self.at(3))
        #expect(attached426)
        let again = session.beginPost(at: Self.at(3))
        #expect(!again)
        session.endPost(at: Self.at(4))
        let attached142 = session.beginPost(at: Self.at(4))
        #expect(attached142)
    }

    @Test func anSSEStreamReplacesTheOneBefore() throws {
        var session = Self.session(.eventStream)
        let first = try session.attach(lastEventID: nil, at: Self.at(0)).get().stream
        let second = try session.attach(lastEventID: nil, at: Self.at(1)).get().stream
        #expect(first != second)
        session.detach(stream: first, at: Self.at(2))  // the old stream's end changes nothing
        #expect(session.downstream == .stream(second))
    }

    @Test func pollTimesOutAndStreamsGetHeartbeats() throws {
        var configuration = HTTPFallbackConfiguration()
        configuration.pollTimeout = .seconds(25)
        configuration.heartbeatInterval = .seconds(15)
        var poll = Self.session(.longPolling, configuration)
        _ = try poll.attach(lastEventID: nil, at: Self.at(0)).get()
        #expect(poll.nextDeadline == Self.at(25))
        let attached963 = poll.timerFired(at: Self.at(24.9))
        #expect(attached963 == FallbackSession.Due())
        let attached286 = poll.timerFired(at: Self.at(25))
        #expect(attached286.pollTimedOut)

        var stream = Self.session(.eventStream, configuration)
        _ = try stream.attach(lastEventID: nil, at: Self.at(0)).get()
        #expect(stream.nextDeadline == Self.at(15))
        stream.enqueueMessage(isText: true, payload: ByteBuffer(string: "x"))
        _ = stream.takeUndelivered(at: Self.at(10))
        #expect(stream.nextDeadline == Self.at(25))  // a message counts as a write
        let attached632 = stream.timerFired(at: Self.at(25))
        #expect(attached632.heartbeat)
        stream.wrote(at: Self.at(25))
        #expect(stream.nextDeadline == Self.at(40))
    }

    @Test func aQuietSessionExpires() throws {
        var configuration = HTTPFallbackConfiguration()
        configuration.sessionTimeout = .seconds(30)
        var session = Self.session(.longPolling, configuration)
        #expect(session.nextDeadline == Self.at(30))  // opened, never polled
        _ = try session.attach(lastEventID: nil, at: Self.at(5)).get()
        let attached970 = session.timerFired(at: Self.at(31))
        #expect(attached970.expired == false)  // a poll is pending
        session.detach(stream: 0, at: Self.at(6))
        let attached468 = session.beginPost(at: Self.at(7))
        #expect(attached468)
        let attached92 = session.timerFired(at: Self.at(100))
        #expect(attached92.expired == false)  // a POST is in flight
        session.endPost(at: Self.at(8))
        #expect(session.nextDeadline == Self.at(38))
        let attached768 = session.timerFired(at: Self.at(37.9))
        #expect(attached768.expired == false)
        let attached669 = session.timerFired(at: Self.at(38))
        #expect(attached669.expired)
    }

    @Test func aClosedSessionWhoseCloseWasAcknowledgedIsFinished() throws {
        var session = Self.session(.longPolling)
        let closeSequence = session.enqueueClose(CloseFrame(code: .normalClosure))
        let close = try #require(closeSequence)
        _ = try session.attach(lastEventID: nil, at: Self.at(0)).get()
        #expect(Self.text(session.takeUndelivered(at: Self.at(0))).contains("event: close"))
        session.detach(stream: 0, at: Self.at(0))
        let attached381 = session.attach(lastEventID: close, at: Self.at(1))
        #expect(attached381.failure == .finished)
    }

    @Test func upstreamBodiesParse() throws {
        let body = ByteBuffer(string: "data: hello\ndata: world\n\n: a comment\nevent: binary\ndata: AAEC/w==\n\r\nevent: text64\ndata: =\n\nevent: close\ndata: 4000 done here")
        let events = try EventStreamFormat.parseUpstream(body, maxMessageSize: 100)
        #expect(events == [
            .message(isText: true, ByteBuffer(string: "hello\nworld")),
            .message(isText: false, ByteBuffer(bytes: [0, 1, 2, 255])),
            .message(isText: true, ByteBuffer()),
            .close(code: CloseCode(rawValue: 4000), reason: "done here"),
        ])
        #expect(throws: EventStreamFormat.UpstreamError.badBase64) {
            try EventStreamFormat.parseUpstream(ByteBuffer(string: "event: binary\ndata: !!!!\n\n"), maxMessageSize: 100)
        }
        #expect(throws: EventStreamFormat.UpstreamError.unknownEvent("ping")) {
            try EventStreamFormat.parseUpstream(ByteBuffer(string: "event: ping\ndata: x\n\n"), maxMessageSize: 100)
        }
        #expect(throws: EventStreamFormat.UpstreamError.badClose("1005 x")) {
            try EventStreamFormat.parseUpstream(ByteBuffer(string: "event: close\ndata: 1005 x\n\n"), maxMessageSize: 100)
        }
        #expect(throws: EventStreamFormat.UpstreamError.messageTooLarge(limit: 4)) {
            try EventStreamFormat.parseUpstream(ByteBuffer(string: "data: 12345\n\n"), maxMessageSize: 4)
        }
        #expect(throws: EventStreamFormat.UpstreamError.notUTF8) {
            try EventStreamFormat.parseUpstream(ByteBuffer(bytes: [0x64, 0x61, 0x74, 0x61, 0x3A, 0xFF]), maxMessageSize: 100)
        }
    }

    @Test func base64RoundTripsEveryLength() throws {
        for length in 0..<70 {
            let bytes = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) })
            var encoded = ByteBuffer()
            Base64Text.encode(bytes, into: &encoded)
            #expect(encoded.readableBytes == (length + 2) / 3 * 4)
            #expect(encoded.withUnsafeReadableBytes { Base64Text.decode($0) } == bytes)
        }
        #expect(Base64Text.decode("abc".utf8) == nil)
        #expect(Base64Text.decode("ab=c".utf8) == nil)
    }
}

extension Result {
    var failure: Failure? { if case .failure(let error) = self { error } else { nil } }
    var success: Success? { if case .success(let value) = self { value } else { nil } }
}
