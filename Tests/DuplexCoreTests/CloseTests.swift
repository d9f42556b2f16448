import NIOCore
import Testing
@testable import DuplexCore

/// The closing handshake (RFC 6455 §5.5.1, §7) between two Connections.
@Suite struct CloseTests {
    /// Moves everything `from` has queued into `to` and returns `to`'s events.
    static func deliver(_ from: inout Connection, to: inout Connection) -> [ConnectionEvent] {
        guard let bytes = from.takeOutbound() else { return [] }
        to.receive(bytes)
        return drain(&to)
    }

    @Test func serverInitiatedClose() throws {
        var server = Connection(role: .server)
        var client = Connection(role: .client)
        #expect(server.state == .open && client.state == .open)

        try server.close(code: .goingAway, reason: "restarting")
        #expect(server.state == .closing)
        #expect(server.closeSent == CloseFrame(code: .goingAway, reason: "restarting"))
        #expect(!server.shouldCloseTransport)

        #expect(Self.deliver(&server, to: &client) == [.close(CloseFrame(code: .goingAway, reason: "restarting"))])
        #expect(client.state == .closed)
        #expect(client.closeReceived == CloseFrame(code: .goingAway, reason: "restarting"))
        #expect(client.closeSent?.code == .goingAway)  // the echo of the server's code
        #expect(!client.shouldCloseTransport)  // a client waits for the server to close the TCP connection
        #expect(client.isCleanlyClosed)
        #expect(client.closeResult == CloseFrame(code: .goingAway, reason: "restarting"))

        let echo = decodeFrames(sentBy: .client, client.takeOutbound())
        #expect(echo.count == 1)
        #expect(echo.first?.opcode == .close)
        #expect(echo.first.flatMap(closeCode(of:)) == 1001)
        var echoBytes = ByteBuffer()
        for frame in echo { FrameWriter.write(frame, to: &echoBytes) }
        server.receive(echoBytes)
        #expect(drain(&server) == [.close(CloseFrame(code: .goingAway))])
        #expect(server.state == .closed)
        #expect(server.shouldCloseTransport)  // the server closes the TCP connection first
        #expect(server.isCleanlyClosed)
        #expect(server.closeResult.code == .goingAway)
        #expect(server.takeOutbound() == nil)  // no second close frame
    }

    @Test func clientInitiatedClose() throws {
        var server = Connection(role: .server)
        var client = Connection(role: .client)
        try client.close()  // 1000 by default
        #expect(client.state == .closing)
        #expect(client.closeSent == CloseFrame(code: .normalClosure))

        #expect(Self.deliver(&client, to: &server) == [.close(CloseFrame(code: .normalClosure))])
        #expect(server.state == .closed)
        #expect(server.shouldCloseTransport)  // after writing the echo
        #expect(server.closeSent == CloseFrame(code: .normalClosure))

        #expect(Self.deliver(&server, to: &client) == [.close(CloseFrame(code: .normalClosure))])
        #expect(client.state == .closed)
        #expect(!client.shouldCloseTransport)
        #expect(client.takeOutbound() == nil)
        #expect(client.isCleanlyClosed && server.isCleanlyClosed)
        #expect(client.closeResult.code == .normalClosure)
        client.transportClosed()
        #expect(client.state == .closed)
        #expect(client.closeResult.code == .normalClosure)
    }

    @Test(arguments: [Role.client, .server])
    func peerCodeIsEchoed(role: Role) {
        for code: UInt16 in [1000, 1001, 1003, 1011, 3000, 4999] {
            var connection = Connection(role: role)
            #expect(feed(&connection, Wire.close(to: role, code: code, reason: Array("why".utf8)))
                    == [.close(CloseFrame(code: CloseCode(code), reason: "why"))])
            let echo = decodeFrames(sentBy: role, connection.takeOutbound())
            #expect(echo.map(\.opcode) == [.close])
            #expect(echo.first.flatMap(closeCode(of:)) == code)
            #expect(connection.closeResult == CloseFrame(code: CloseCode(code), reason: "why"))
        }
    }

    @Test(arguments: [Role.client, .server])
    func emptyCloseIsAnsweredWithEmptyClose(role: Role) {
        var connection = Connection(role: role)
        #expect(feed(&connection, Wire.close(to: role, code: nil)) == [.close(CloseFrame(code: nil))])
        let echo = decodeFrames(sentBy: role, connection.takeOutbound())
        #expect(echo.map(\.opcode) == [.close])
        #expect(echo.first?.payload.readableBytes == 0)
        #expect(connection.closeResult == CloseFrame(code: .noStatusReceived))
        #expect(connection.closeResult.code?.rawValue == 1005)
        #expect(connection.isCleanlyClosed)
    }

    @Test func emptyCloseFromThisSide() throws {
        var client = Connection(role: .client)
        var server = Connection(role: .server)
        try client.close(code: nil, reason: "ignored without a code")
        #expect(client.closeSent == CloseFrame(code: nil))
        let frames = decodeFrames(sentBy: .client, client.takeOutbound())
        #expect(frames.map(\.payload.readableBytes) == [0])
        var bytes = ByteBuffer()
        for frame in frames { FrameWriter.write(frame, to: &bytes) }
        server.receive(bytes)
        #expect(drain(&server) == [.close(CloseFrame(code: nil))])
        #expect(server.closeResult.code == .noStatusReceived)
    }

    @Test(arguments: [Role.client, .server])
    func abnormalClosureWhenNoCloseFrameArrived(role: Role) throws {
        var connection = Connection(role: role)
        #expect(connection.closeResult == CloseFrame(code: .abnormalClosure))
        try connection.close()
        connection.transportClosed()
        #expect(connection.state == .closed)
        #expect(connection.closeResult.code?.rawValue == 1006)
        #expect(!connection.isCleanlyClosed)
        var other = Connection(role: role)
        other.transportClosed()
        #expect(other.state == .closed)
        #expect(other.closeResult.code == .abnormalClosure)
    }

    @Test(arguments: [Role.client, .server])
    func sendAfterCloseThrows(role: Role) throws {
        var closing = Connection(role: role)
        try closing.close()
        _ = closing.takeOutbound()
        #expect(throws: SendError.notOpen) { try closing.send(text: "x") }
        #expect(throws: SendError.notOpen) { try closing.send(binary: ByteBuffer(string: "x")) }
        #expect(throws: SendError.notOpen) { try closing.send(.text, payload: ByteBuffer(string: "x"), fragmentSize: 1) }
        #expect(throws: SendError.notOpen) { try closing.ping() }
        #expect(throws: SendError.notOpen) { try closing.pong() }
        // A second close is a no-op: one close frame only.
        try closing.close(code: .goingAway)
        #expect(closing.takeOutbound() == nil)
        #expect(closing.closeSent == CloseFrame(code: .normalClosure))

        // Closed by the peer: also refused.
        var closed = Connection(role: role)
        _ = feed(&closed, Wire.close(to: role, code: 1000))
        _ = closed.takeOutbound()
        #expect(throws: SendError.notOpen) { try closed.send(text: "x") }
        #expect(throws: SendError.notOpen) { try closed.ping() }
        try closed.close()
        #expect(closed.takeOutbound() == nil)

        // After the transport closed.
        var gone = Connection(role: role)
        gone.transportClosed()
        #expect(throws: SendError.notOpen) { try gone.send(text: "x") }
    }

    @Test func closeValidatesCodeAndReason() throws {
        var connection = Connection(role: .server)
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            #expect(throws: SendError.invalidCloseCode(CloseCode(code))) { try connection.close(code: CloseCode(code)) }
        }
        let tooLong = String(repeating: "a", count: 124)
        #expect(throws: SendError.closeReasonTooLong(124)) { try connection.close(code: .normalClosure, reason: tooLong) }
        // Counted in UTF-8 bytes: 62 × "é" is 124 bytes.
        #expect(throws: SendError.closeReasonTooLong(124)) {
            try connection.close(code: .normalClosure, reason: String(repeating: "é", count: 62))
        }
        #expect(connection.state == .open)
        #expect(connection.takeOutbound() == nil)

        let longest = String(repeating: "é", count: 61) + "a"  // 123 bytes
        try connection.close(code: CloseCode(4000), reason: longest)
        let frames = decodeFrames(sentBy: .server, connection.takeOutbound())
        #expect(frames.count == 1)
        #expect(frames.first?.payload.readableBytes == 125)
        #expect(try frames.first.map { try Connection.parseClosePayload($0.payload) } == CloseFrame(code: CloseCode(4000), reason: longest))
    }

    /// While closing, received data is still delivered, pings are not answered, and the peer's
    /// close completes the handshake without a second close frame.
    @Test func receivingWhileClosing() throws {
        var server = Connection(role: .server)
        try server.close(code: .normalClosure)
        _ = server.takeOutbound()
        #expect(feed(&server, Wire.frame(to: .server, .text, "late")) == [.text(ByteBuffer(string: "late"))])
        #expect(feed(&server, Wire.frame(to: .server, .ping, "p")) == [.ping(ByteBuffer(string: "p"))])
        #expect(server.takeOutbound() == nil)
        #expect(feed(&server, Wire.close(to: .server, code: 1000)) == [.close(CloseFrame(code: .normalClosure))])
        #expect(server.state == .closed)
        #expect(server.takeOutbound() == nil)
        #expect(server.shouldCloseTransport)
        // Nothing after the close frame.
        #expect(feed(&server, Wire.frame(to: .server, .text, "x")) == [])
    }

    /// A protocol error while closing: the connection fails without a second close frame.
    @Test func failureWhileClosing() throws {
        var client = Connection(role: .client)
        try client.close()
        _ = client.takeOutbound()
        let events = feed(&client, Wire.frame(.text, [0xFF]))
        #expect(events == [.failed(ProtocolError(.invalidUTF8))])
        #expect(client.state == .closed)
        #expect(client.takeOutbound() == nil)
        #expect(client.shouldCloseTransport)  // a failed client closes the transport itself
        #expect(client.closeResult.code == .invalidPayloadData)
    }

    @Test func closeCodeWireValidityTable() {
        var valid: Set<UInt16> = []
        for code in 0...UInt16.max where CloseCode(code).isValidOnWire { valid.insert(code) }
        let expected = Set<UInt16>(1000...1003).union(1007...1014).union(3000...4999)
        #expect(valid == expected)
        #expect(CloseCode.normalClosure.rawValue == 1000)
        #expect(CloseCode.noStatusReceived.rawValue == 1005 && !CloseCode.noStatusReceived.isValidOnWire)
        #expect(CloseCode.abnormalClosure.rawValue == 1006 && !CloseCode.abnormalClosure.isValidOnWire)
        #expect(CloseCode.tlsHandshakeFailure.rawValue == 1015 && !CloseCode.tlsHandshakeFailure.isValidOnWire)
        #expect(CloseCode(rawValue: 1009) == .messageTooBig)
        #expect(CloseCode.protocolError.description == "1002 (protocol error)")
        #expect(CloseCode(4321).description == "4321")
    }
}
