import NIOCore
import Testing
@testable import DuplexCore

/// Every protocol violation fails the Connection with its close code: the failure event, the
/// close frame it queues, and silence afterwards.
@Suite struct ProtocolErrorTests {
    /// Feeds `input` (whole, then in a fresh connection byte by byte) and checks the failure:
    /// the event, `failure`, the one close frame queued with `code`, the state, and that nothing
    /// more is accepted or sent.
    @discardableResult
    static func expectFailure(
        _ role: Role,
        _ input: [UInt8],
        code: CloseCode,
        kind: ProtocolError.Kind? = nil,
        before: [ConnectionEvent] = [],
        configuration: Connection.Configuration = .init(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> ProtocolError? {
        var connection = Connection(role: role, configuration: configuration)
        let events = feed(&connection, input)
        guard let error = failure(in: events) else {
            Issue.record("no failure; events: \(events)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(Array(events.dropLast()) == before, sourceLocation: sourceLocation)
        #expect(error.closeCode == code, sourceLocation: sourceLocation)
        if let kind { #expect(error.kind == kind, sourceLocation: sourceLocation) }
        #expect(connection.failure == error, sourceLocation: sourceLocation)
        #expect(connection.state == .closed, sourceLocation: sourceLocation)
        #expect(connection.shouldCloseTransport, sourceLocation: sourceLocation)
        #expect(connection.closeResult.code == code, sourceLocation: sourceLocation)
        #expect(!connection.isCleanlyClosed, sourceLocation: sourceLocation)

        // Exactly one frame goes out (after any automatic pongs of `before`): the close with the code.
        let frames = decodeFrames(sentBy: role, connection.takeOutbound(), sourceLocation: sourceLocation)
            .filter { $0.opcode != .pong }
        #expect(frames.count == 1, sourceLocation: sourceLocation)
        if let close = frames.last {
            #expect(close.opcode == .close, sourceLocation: sourceLocation)
            #expect(closeCode(of: close) == code.rawValue, sourceLocation: sourceLocation)
            #expect(close.payload.readableBytes <= 125, sourceLocation: sourceLocation)
            #expect((try? Connection.parseClosePayload(close.payload)) != nil, "the close frame we send must be valid",
                    sourceLocation: sourceLocation)
        }
        #expect(connection.closeSent?.code == code, sourceLocation: sourceLocation)

        // After the failure: no events for any input, nothing more sent, sends refused.
        for more in [Wire.frame(to: role, .text, "more"), Wire.frame(to: role, .ping, "p"),
                     Wire.close(to: role, code: 1000)] {
            connection.receive(ByteBuffer(bytes: more))
            #expect(connection.nextEvent() == nil, sourceLocation: sourceLocation)
        }
        #expect(connection.takeOutbound() == nil, sourceLocation: sourceLocation)
        #expect(throws: SendError.notOpen, sourceLocation: sourceLocation) { try connection.send(text: "x") }
        #expect(throws: SendError.notOpen, sourceLocation: sourceLocation) { try connection.ping() }
        try? connection.close()
        #expect(connection.takeOutbound() == nil, sourceLocation: sourceLocation)

        // Byte by byte: the same events, the same failure.
        var slow = Connection(role: role, configuration: configuration)
        var slowEvents: [ConnectionEvent] = []
        for byte in input {
            slowEvents += feed(&slow, [byte])
            if slow.failure != nil { break }
        }
        #expect(slowEvents == events, sourceLocation: sourceLocation)
        return error
    }

    static let roles = [Role.client, .server]

    @Test(arguments: roles)
    func reservedOpcodes(role: Role) {
        for opcode in [UInt8](0x3...0x7) + [UInt8](0xB...0xF) {
            Self.expectFailure(role, Wire.header(to: role, first: 0x80 | opcode, lengthByte: 0), code: .protocolError,
                               kind: .reservedOpcode(opcode))
        }
    }

    @Test(arguments: roles)
    func reservedBitsWithoutExtension(role: Role) {
        for bits in [ReservedBits.rsv1, .rsv2, .rsv3] {
            Self.expectFailure(role, Wire.frame(to: role, .text, "a", rsv: bits), code: .protocolError,
                               kind: .reservedBitsSet(bits))
            Self.expectFailure(role, Wire.frame(to: role, .ping, "a", rsv: bits), code: .protocolError,
                               kind: .reservedBitsSet(bits))
        }
    }

    @Test(arguments: roles)
    func controlFrameOver125Bytes(role: Role) {
        // From the header alone.
        Self.expectFailure(role, Wire.header(to: role, first: 0x89, lengthByte: 126, extended: [0x00, 0x7E]),
                           code: .protocolError, kind: .controlFrameTooLong(126))
        Self.expectFailure(role, Wire.header(to: role, first: 0x88, lengthByte: 127, extended: [0, 0, 0, 0, 0, 1, 0, 0]),
                           code: .protocolError, kind: .controlFrameTooLong(65536))
    }

    @Test(arguments: roles)
    func fragmentedControlFrame(role: Role) {
        for opcode in [Opcode.ping, .pong, .close] {
            Self.expectFailure(role, Wire.frame(to: role, opcode, [], fin: false), code: .protocolError,
                               kind: .fragmentedControlFrame)
        }
    }

    @Test func unmaskedFrameToServer() {
        Self.expectFailure(.server, Wire.frame(.text, "hi"), code: .protocolError, kind: .unmaskedFrame)
        Self.expectFailure(.server, Wire.frame(.ping, []), code: .protocolError, kind: .unmaskedFrame)
        // A good frame first, then the bad one.
        Self.expectFailure(.server, Wire.frame(.text, "ok", key: rfcKey) + Wire.frame(.binary, "hi"),
                           code: .protocolError, kind: .unmaskedFrame, before: [.text(ByteBuffer(string: "ok"))])
    }

    @Test func maskedFrameToClient() {
        Self.expectFailure(.client, Wire.frame(.text, "hi", key: rfcKey), code: .protocolError, kind: .maskedFrame)
        Self.expectFailure(.client, Wire.frame(.close, [0x03, 0xE8], key: rfcKey), code: .protocolError, kind: .maskedFrame)
    }

    @Test(arguments: roles)
    func payloadLengthWithMostSignificantBit(role: Role) {
        Self.expectFailure(role, Wire.header(to: role, first: 0x82, lengthByte: 127, extended: [0x80, 0, 0, 0, 0, 0, 0, 1]),
                           code: .protocolError, kind: .invalidPayloadLength)
        Self.expectFailure(role, Wire.header(to: role, first: 0x82, lengthByte: 127, extended: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
                           code: .protocolError, kind: .invalidPayloadLength)
    }

    @Test(arguments: roles)
    func continuationWithoutMessage(role: Role) {
        Self.expectFailure(role, Wire.frame(to: role, .continuation, "x"), code: .protocolError, kind: .unexpectedContinuation)
        Self.expectFailure(role, Wire.frame(to: role, .continuation, "x", fin: false), code: .protocolError,
                           kind: .unexpectedContinuation)
        // After a complete message, a continuation has no message to continue.
        Self.expectFailure(role, Wire.frame(to: role, .text, "a", fin: false) + Wire.frame(to: role, .continuation, "b")
                           + Wire.frame(to: role, .continuation, "c"),
                           code: .protocolError, kind: .unexpectedContinuation, before: [.text(ByteBuffer(string: "ab"))])
    }

    @Test(arguments: roles)
    func newDataFrameDuringFragmentedMessage(role: Role) {
        for (first, second) in [(Opcode.text, Opcode.text), (.text, .binary), (.binary, .text), (.binary, .binary)] {
            Self.expectFailure(role, Wire.frame(to: role, first, "a", fin: false) + Wire.frame(to: role, second, "b"),
                               code: .protocolError, kind: .expectedContinuation)
        }
        // Even with a control frame and a continuation in between.
        Self.expectFailure(role, Wire.frame(to: role, .binary, "a", fin: false) + Wire.frame(to: role, .ping, "p")
                           + Wire.frame(to: role, .continuation, "b", fin: false) + Wire.frame(to: role, .binary, "c"),
                           code: .protocolError, kind: .expectedContinuation, before: [.ping(ByteBuffer(string: "p"))])
    }

    @Test(arguments: roles)
    func frameOverMaxFrameSizeFromHeaderAlone(role: Role) {
        let configuration = Connection.Configuration(limits: Limits(maxFrameSize: 1000, maxMessageSize: 1 << 20))
        // Only the header of a 1001-byte frame: the failure must already happen.
        Self.expectFailure(role, Wire.header(to: role, first: 0x82, lengthByte: 126, extended: [0x03, 0xE9]),
                           code: .messageTooBig, kind: .frameTooBig(size: 1001, limit: 1000), configuration: configuration)
        Self.expectFailure(role, Wire.header(to: role, first: 0x01, lengthByte: 127, extended: [0, 0, 0, 1, 0, 0, 0, 0]),
                           code: .messageTooBig, kind: .frameTooBig(size: 1 << 32, limit: 1000), configuration: configuration)
        // Exactly at the limit: accepted.
        var connection = Connection(role: role, configuration: configuration)
        #expect(feed(&connection, Wire.frame(to: role, .binary, [UInt8](repeating: 1, count: 1000)))
                == [.binary(ByteBuffer(repeating: 1, count: 1000))])
    }

    @Test func defaultFrameLimitRefusesAHugeHeader() {
        Self.expectFailure(.server, Wire.header(to: .server, first: 0x82, lengthByte: 127, extended: [0, 0, 0, 0, 0, 0x10, 0, 1]),
                           code: .messageTooBig, kind: .frameTooBig(size: (1 << 20) + 1, limit: 1 << 20))
    }

    @Test(arguments: roles)
    func messageOverMaxMessageSizeAcrossFragments(role: Role) {
        let configuration = Connection.Configuration(limits: Limits(maxFrameSize: 1 << 20, maxMessageSize: 1000))
        let first = Wire.frame(to: role, .binary, [UInt8](repeating: 7, count: 600), fin: false)
        // 600 + 401 > 1000: refused from the continuation's header, no payload needed.
        Self.expectFailure(role, first + Wire.header(to: role, first: 0x00, lengthByte: 126, extended: [0x01, 0x91]),
                           code: .messageTooBig, kind: .messageTooBig(limit: 1000), configuration: configuration)
        // Even with a ping in between.
        Self.expectFailure(role, first + Wire.frame(to: role, .ping, "p")
                           + Wire.header(to: role, first: 0x80, lengthByte: 126, extended: [0x01, 0x91]),
                           code: .messageTooBig, kind: .messageTooBig(limit: 1000), before: [.ping(ByteBuffer(string: "p"))],
                           configuration: configuration)
        // A single text frame over the message limit (but under the frame limit), from its header.
        Self.expectFailure(role, Wire.header(to: role, first: 0x81, lengthByte: 126, extended: [0x03, 0xE9]),
                           code: .messageTooBig, kind: .messageTooBig(limit: 1000), configuration: configuration)
        // 600 + 400 = 1000 is fine.
        var connection = Connection(role: role, configuration: configuration)
        #expect(feed(&connection, first + Wire.frame(to: role, .continuation, [UInt8](repeating: 7, count: 400)))
                == [.binary(ByteBuffer(repeating: 7, count: 1000))])
        // The size counts per message: the next message starts from zero.
        #expect(feed(&connection, Wire.frame(to: role, .binary, [UInt8](repeating: 8, count: 1000)))
                == [.binary(ByteBuffer(repeating: 8, count: 1000))])
    }

    /// With no frame limit to speak of, a continuation announcing 2^63-1 bytes must be refused
    /// by the message limit, not overflow the running size.
    @Test(arguments: roles)
    func hugeContinuationWithoutFrameLimit(role: Role) {
        let configuration = Connection.Configuration(limits: Limits(maxFrameSize: .max, maxMessageSize: 1000))
        let largest: [UInt8] = [0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        Self.expectFailure(role, Wire.frame(to: role, .text, "abc", fin: false)
                           + Wire.header(to: role, first: 0x80, lengthByte: 127, extended: largest),
                           code: .messageTooBig, kind: .messageTooBig(limit: 1000), configuration: configuration)
        Self.expectFailure(role, Wire.header(to: role, first: 0x82, lengthByte: 127, extended: largest),
                           code: .messageTooBig, kind: .messageTooBig(limit: 1000), configuration: configuration)
    }

    @Test(arguments: roles)
    func invalidUTF8Text(role: Role) {
        for bad: [UInt8] in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xFF], [0xF4, 0x90, 0x80, 0x80]] {
            Self.expectFailure(role, Wire.frame(to: role, .text, Array("ok".utf8) + bad), code: .invalidPayloadData,
                               kind: .invalidUTF8)
        }
        // Truncated at the end of the message.
        Self.expectFailure(role, Wire.frame(to: role, .text, Array("ok".utf8) + [0xE2, 0x82]), code: .invalidPayloadData,
                           kind: .invalidUTF8)
        Self.expectFailure(role, Wire.frame(to: role, .text, [0xE2], fin: false) + Wire.frame(to: role, .continuation, [0x82])
                           , code: .invalidPayloadData, kind: .invalidUTF8)
        // Binary messages are not checked.
        var connection = Connection(role: role)
        #expect(feed(&connection, Wire.frame(to: role, .binary, [0xFF, 0xC0])) == [.binary(ByteBuffer(bytes: [0xFF, 0xC0]))])
        // A code point split across fragments is fine.
        #expect(feed(&connection, Wire.frame(to: role, .text, [0xE2], fin: false)
                     + Wire.frame(to: role, .continuation, [0x82], fin: false)
                     + Wire.frame(to: role, .continuation, [0xAC]))
                == [.text(ByteBuffer(string: "€"))])
    }

    @Test(arguments: roles)
    func closePayloadOfOneByte(role: Role) {
        Self.expectFailure(role, Wire.frame(to: role, .close, [0x03]), code: .protocolError, kind: .invalidClosePayload)
    }

    static let invalidCloseCodes: [UInt16] = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
    static let validCloseCodes: [UInt16] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                                           3000, 3999, 4000, 4999]

    @Test(arguments: roles)
    func invalidCloseCodes(role: Role) {
        for code in Self.invalidCloseCodes {
            Self.expectFailure(role, Wire.close(to: role, code: code), code: .protocolError, kind: .invalidCloseCode(code))
        }
    }

    @Test(arguments: roles)
    func validCloseCodesAreAcceptedAndEchoed(role: Role) {
        for code in Self.validCloseCodes {
            var connection = Connection(role: role)
            let events = feed(&connection, Wire.close(to: role, code: code, reason: Array("bye ✓".utf8)))
            #expect(events == [.close(CloseFrame(code: CloseCode(code), reason: "bye ✓"))], "\(code)")
            #expect(connection.failure == nil)
            #expect(connection.state == .closed)
            let echo = decodeFrames(sentBy: role, connection.takeOutbound())
            #expect(echo.count == 1)
            #expect(echo.first?.opcode == .close)
            #expect(echo.first.flatMap(closeCode(of:)) == code, "\(code)")
        }
    }

    @Test(arguments: roles)
    func closeReasonNotUTF8(role: Role) {
        Self.expectFailure(role, Wire.close(to: role, code: 1000, reason: [0x61, 0xFF]), code: .invalidPayloadData,
                           kind: .invalidUTF8)
        Self.expectFailure(role, Wire.close(to: role, code: 1000, reason: [0xCE]), code: .invalidPayloadData,
                           kind: .invalidUTF8)
        Self.expectFailure(role, Wire.close(to: role, code: 1000, reason: [0xED, 0xA0, 0x80]), code: .invalidPayloadData,
                           kind: .invalidUTF8)
    }

    @Test func parseClosePayload() throws {
        #expect(try Connection.parseClosePayload(ByteBuffer()) == CloseFrame(code: nil))
        #expect(try Connection.parseClosePayload(ByteBuffer(bytes: [0x03, 0xE8])) == CloseFrame(code: .normalClosure))
        #expect(try Connection.parseClosePayload(ByteBuffer(bytes: [0x0F, 0xA0] + Array("ok".utf8)))
                == CloseFrame(code: CloseCode(4000), reason: "ok"))
        #expect(throws: ProtocolError(.invalidClosePayload)) { try Connection.parseClosePayload(ByteBuffer(bytes: [3])) }
        #expect(throws: ProtocolError(.invalidCloseCode(1005))) {
            try Connection.parseClosePayload(ByteBuffer(bytes: [0x03, 0xED]))
        }
        #expect(throws: ProtocolError(.invalidUTF8)) { try Connection.parseClosePayload(ByteBuffer(bytes: [0x03, 0xE8, 0x80])) }
    }

    @Test func closeCodeOfEveryKind() {
        let protocolErrors: [ProtocolError.Kind] = [
            .reservedOpcode(3), .reservedBitsSet(.rsv1), .controlFrameTooLong(126), .fragmentedControlFrame,
            .unmaskedFrame, .maskedFrame, .invalidPayloadLength, .unexpectedContinuation, .expectedContinuation,
            .invalidClosePayload, .invalidCloseCode(1005),
        ]
        for kind in protocolErrors { #expect(ProtocolError(kind).closeCode == .protocolError) }
        #expect(ProtocolError(.invalidUTF8).closeCode == .invalidPayloadData)
        #expect(ProtocolError(.frameTooBig(size: 2, limit: 1)).closeCode == .messageTooBig)
        #expect(ProtocolError(.messageTooBig(limit: 1)).closeCode == .messageTooBig)
        #expect(ProtocolError(.extensionFailure(code: .internalError, message: "x")).closeCode == .internalError)
        for kind in protocolErrors { #expect(!ProtocolError(kind).description.isEmpty) }
    }

    /// Autobahn 6.4.3/6.4.4: invalid UTF-8 inside one frame fails before the frame is complete.
    @Test(arguments: roles)
    func utf8FailsFastInsideAFrame(role: Role) throws {
        let payload = RFCTestText.kosme + [0xED, 0xA0, 0x80] + Array("edited".utf8)
        let frame = Wire.frame(to: role, .text, payload)
        let headerSize = frame.count - payload.count
        var connection = Connection(role: role)
        // Header and the valid part: nothing yet.
        #expect(feed(&connection, Array(frame[..<(headerSize + RFCTestText.kosme.count)])) == [])
        #expect(connection.failure == nil)
        // Then a part holding the invalid byte, without the rest of the frame: fails now.
        let events = feed(&connection, Array(frame[(headerSize + RFCTestText.kosme.count)..<(headerSize + 14)]))
        #expect(events == [.failed(ProtocolError(.invalidUTF8))])
        let close = decodeFrames(sentBy: role, connection.takeOutbound())
        #expect(close.first.flatMap(closeCode(of:)) == 1007)

        // Byte by byte: exactly when the A0 (payload index 12) arrives, not at the ED before it.
        var slow = Connection(role: role)
        var failedAt: Int? = nil
        for (i, byte) in frame.enumerated() {
            if !feed(&slow, [byte]).isEmpty {
                failedAt = i - headerSize
                break
            }
        }
        #expect(failedAt == 12)
        #expect(slow.failure == ProtocolError(.invalidUTF8))
    }

    /// Autobahn 6.4.1/6.4.2: the invalid byte in a later fragment fails at once, before the message ends.
    @Test(arguments: roles)
    func utf8FailsFastAcrossFragments(role: Role) {
        let first = Wire.frame(to: role, .text, RFCTestText.kosme, fin: false)
        let second = Wire.frame(to: role, .continuation, [0xED, 0xA0, 0x80, 0x65], fin: false)
        let third = Wire.frame(to: role, .continuation, Array("edited".utf8))
        var connection = Connection(role: role)
        #expect(feed(&connection, first) == [])
        // The second fragment's header and its first two bytes: fails at the A0.
        let headerSize = second.count - 4
        #expect(feed(&connection, Array(second[..<(headerSize + 1)])) == [])
        #expect(feed(&connection, Array(second[(headerSize + 1)..<(headerSize + 2)])) == [.failed(ProtocolError(.invalidUTF8))])
        #expect(feed(&connection, Array(second[(headerSize + 2)...]) + third) == [])
        // The invalid lead byte split exactly at a fragment boundary (6.4.2).
        var other = Connection(role: role)
        #expect(feed(&other, Wire.frame(to: role, .text, RFCTestText.kosme + [0xF4], fin: false)) == [])
        let fourth = Wire.frame(to: role, .continuation, [0x90, 0x80, 0x80])
        #expect(feed(&other, Array(fourth[..<(fourth.count - 2)])) == [.failed(ProtocolError(.invalidUTF8))])
    }
}

enum RFCTestText {
    static let kosme = UTF8ValidatorTests.kosme
}
