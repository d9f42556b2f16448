import HTTPTypes
import NIOCore
import Testing
@testable import DuplexCore

/// A test extension that owns RSV2 and XORs every payload byte with a constant.
final class XorExtension: WebSocketExtension {
    let name: String
    let reservedBits: ReservedBits
    let pad: UInt8
    private(set) var shutdownCount = 0

    init(name: String = "x-xor", reservedBits: ReservedBits = .rsv2, pad: UInt8 = 0x5A) {
        self.name = name
        self.reservedBits = reservedBits
        self.pad = pad
    }

    func xor(_ buffer: ByteBuffer) -> ByteBuffer {
        ByteBuffer(bytes: buffer.readableBytesView.map { $0 ^ pad })
    }

    func decode(frame: ByteBuffer, isFinal: Bool, maxOutput: Int) throws(ExtensionError) -> ByteBuffer {
        guard frame.readableBytes <= maxOutput else { throw .messageTooBig }
        return xor(frame)
    }

    func encode(message: ByteBuffer, opcode: Opcode) throws(ExtensionError) -> (payload: ByteBuffer, reservedBits: ReservedBits)? {
        if message.readableBytes == 0 { return nil }  // empty messages go out unchanged
        return (xor(message), reservedBits)
    }

    func shutdown() { shutdownCount += 1 }
}

/// An extension that owns RSV2 and fails every decode and encode.
final class FailingExtension: WebSocketExtension {
    let name = "x-fail"
    let reservedBits: ReservedBits = .rsv2
    let error: ExtensionError
    init(error: ExtensionError) { self.error = error }
    func decode(frame: ByteBuffer, isFinal: Bool, maxOutput: Int) throws(ExtensionError) -> ByteBuffer { throw error }
    func encode(message: ByteBuffer, opcode: Opcode) throws(ExtensionError) -> (payload: ByteBuffer, reservedBits: ReservedBits)? {
        throw error
    }
}

struct XorServerNegotiator: ServerExtensionNegotiator {
    var name = "x-xor"
    var reservedBits: ReservedBits = .rsv2
    func accept(offers: [ExtensionOffer]) -> (response: ExtensionOffer, extension: any WebSocketExtension)? {
        // Accept the first offer whose parameters are known; echo the pad parameter.
        for offer in offers where offer.parameters.allSatisfy({ $0.name == "pad" }) {
            let pad = offer.parameters.first?.value.flatMap { UInt8($0) } ?? 0x5A
            return (ExtensionOffer(name: name, parameters: [.init(name: "pad", value: String(pad))]),
                    XorExtension(name: name, reservedBits: reservedBits, pad: pad))
        }
        return nil
    }
}

struct XorClientNegotiator: ClientExtensionNegotiator {
    var name = "x-xor"
    var reservedBits: ReservedBits = .rsv2
    var pad: UInt8 = 0x33
    func offers() -> [ExtensionOffer] {
        [ExtensionOffer(name: name, parameters: [.init(name: "pad", value: String(pad)), .init(name: "unknown")]),
         ExtensionOffer(name: name, parameters: [.init(name: "pad", value: String(pad))])]
    }
    func accept(response: ExtensionOffer) throws(HandshakeError) -> any WebSocketExtension {
        guard let value = response.parameters.first(where: { $0.name == "pad" })?.value, let pad = UInt8(value) else {
            throw .extensionRejected(name: name, reason: "no pad")
        }
        return XorExtension(name: name, reservedBits: reservedBits, pad: pad)
    }
}

@Suite struct ExtensionTests {
    // MARK: - ExtensionOffer

    @Test func parseOffers() throws {
        let offers = try ExtensionOffer.parse([
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate",
            " x-foo ;a=\"quoted\" ; b = 2 ,, x-bar",
        ])
        #expect(offers == [
            ExtensionOffer(name: "permessage-deflate", parameters: [.init(name: "client_max_window_bits"),
                                                                     .init(name: "server_max_window_bits", value: "10")]),
            ExtensionOffer(name: "permessage-deflate"),
            ExtensionOffer(name: "x-foo", parameters: [.init(name: "a", value: "quoted"), .init(name: "b", value: "2")]),
            ExtensionOffer(name: "x-bar"),
        ])
        #expect(try ExtensionOffer.parse([]) == [])
        #expect(try ExtensionOffer.parse(["", " , "]) == [])
        #expect(try ExtensionOffer.parse(["a; b=\"c\\d\""]) == [ExtensionOffer(name: "a", parameters: [.init(name: "b", value: "cd")])])
    }

    @Test func malformedOffersThrow() {
        let malformed = [
            "permessage-deflate;", "; a", "a;;b", "a; =1", "a; b=", "a b", "a; b=1 c", "a; b=\"unterminated",
            "a; b=\"not a token\"", "a; b=\"\"", "a, b c", "a; b=c=d", "a=1", "\"a\"", "a; b=\"c\"d",
        ]
        for value in malformed {
            #expect(throws: HandshakeError.malformedExtensions(value), "\(value)") { try ExtensionOffer.parse([value]) }
        }
    }

    @Test func serializeOffers() throws {
        let offers = [
            ExtensionOffer(name: "permessage-deflate", parameters: [.init(name: "client_max_window_bits"),
                                                                     .init(name: "server_max_window_bits", value: "10")]),
            ExtensionOffer(name: "x-foo", parameters: [.init(name: "path", value: "/a/b")]),
            ExtensionOffer(name: "x-bar"),
        ]
        let header = ExtensionOffer.serialize(offers)
        #expect(header == "permessage-deflate; client_max_window_bits; server_max_window_bits=10, x-foo; path=\"/a/b\", x-bar")
        #expect(offers[2].description == "x-bar")
        // "/a/b" is not a token, so the parser refuses the quoted form: only token values round-trip.
        let tokenOnly = [offers[0], offers[2]]
        #expect(try ExtensionOffer.parse([ExtensionOffer.serialize(tokenOnly)]) == tokenOnly)
    }

    // MARK: - Negotiation

    static func negotiate(
        client clientNegotiators: [any ClientExtensionNegotiator],
        server serverNegotiators: [any ServerExtensionNegotiator]
    ) throws -> (client: [any WebSocketExtension], server: [any WebSocketExtension], response: HTTPFields) {
        let client = ClientHandshake(host: "h", extensions: clientNegotiators)
        let upgrade = try ServerHandshake.validate(client.request).get()
        let acceptance = ServerHandshake.accept(upgrade, extensions: serverNegotiators)
        let result = try client.validate(status: 101, headers: acceptance.headerFields)
        return (result.extensions, acceptance.extensions, acceptance.headerFields)
    }

    @Test func negotiatedThroughTheHandshake() throws {
        let client = ClientHandshake(host: "h", extensions: [XorClientNegotiator()])
        #expect(client.request.headerFields.values("Sec-WebSocket-Extensions") == ["x-xor; pad=51; unknown, x-xor; pad=51"])
        let (clientExtensions, serverExtensions, response) = try Self.negotiate(client: [XorClientNegotiator()],
                                                                               server: [XorServerNegotiator()])
        #expect(response.values("Sec-WebSocket-Extensions") == ["x-xor; pad=51"])  // the second offer, the first acceptable
        #expect(clientExtensions.map(\.name) == ["x-xor"])
        #expect(serverExtensions.map(\.name) == ["x-xor"])
        #expect((clientExtensions.first as? XorExtension)?.pad == 0x33)
        #expect((serverExtensions.first as? XorExtension)?.pad == 0x33)
        // Not offered by the client: not accepted.
        let plain = try Self.negotiate(client: [], server: [XorServerNegotiator()])
        #expect(plain.server.isEmpty && plain.client.isEmpty)
        #expect(plain.response.values("Sec-WebSocket-Extensions").isEmpty)
    }

    @Test func serverNeverAcceptsTwoExtensionsSharingABit() throws {
        let clientSide: [any ClientExtensionNegotiator] = [XorClientNegotiator(name: "x-a"), XorClientNegotiator(name: "x-b"),
                                                            XorClientNegotiator(name: "x-c", reservedBits: .rsv3)]
        let serverSide: [any ServerExtensionNegotiator] = [XorServerNegotiator(name: "x-a"), XorServerNegotiator(name: "x-b"),
                                                            XorServerNegotiator(name: "x-c", reservedBits: .rsv3)]
        let (client, server, response) = try Self.negotiate(client: clientSide, server: serverSide)
        #expect(server.map(\.name) == ["x-a", "x-c"])
        #expect(client.map(\.name) == ["x-a", "x-c"])
        #expect(response.values("Sec-WebSocket-Extensions") == ["x-a; pad=51, x-c; pad=51"])

        // A client refuses a response with two extensions on one bit.
        let handshake = ClientHandshake(host: "h", extensions: Array(clientSide[0..<2]))
        var headers = HandshakeTests.response(for: handshake)
        headers.add(name: "Sec-WebSocket-Extensions", value: "x-a; pad=1, x-b; pad=2")
        #expect(throws: HandshakeError.extensionRejected(name: "x-b", reason: "RSV bits already in use")) {
            try handshake.validate(status: 101, headers: headers)
        }
        // And the same extension twice, or one it did not offer.
        var twice = HandshakeTests.response(for: handshake)
        twice.add(name: "Sec-WebSocket-Extensions", value: "x-a; pad=1")
        twice.add(name: "Sec-WebSocket-Extensions", value: "x-a; pad=1")
        #expect(throws: HandshakeError.unofferedExtension("x-a")) { try handshake.validate(status: 101, headers: twice) }
        var other = HandshakeTests.response(for: handshake)
        other.add(name: "Sec-WebSocket-Extensions", value: "x-zzz")
        #expect(throws: HandshakeError.unofferedExtension("x-zzz")) { try handshake.validate(status: 101, headers: other) }
        // The negotiator's own check.
        var noPad = HandshakeTests.response(for: handshake)
        noPad.add(name: "Sec-WebSocket-Extensions", value: "x-a")
        #expect(throws: HandshakeError.extensionRejected(name: "x-a", reason: "no pad")) {
            try handshake.validate(status: 101, headers: noPad)
        }
    }

    // MARK: - Connections with the extension

    static func pair() throws -> (client: Connection, server: Connection) {
        let (c, s, _) = try negotiate(client: [XorClientNegotiator()], server: [XorServerNegotiator()])
        return (Connection(role: .client, extensions: c), Connection(role: .server, extensions: s))
    }

    @Test func messagesRoundTripThroughTheExtension() throws {
        var (client, server) = try Self.pair()
        var rng = SeededGenerator(seed: 8)
        for (size, fragment) in [(1, nil), (100, nil), (1000, 300), (5, 1)] as [(Int, Int?)] {
            let text = rng.text(byteCount: size)
            try client.send(text: text, fragmentSize: fragment)
            let wire = try outbound(of: &client)
            let frames = decodeFrames(sentBy: .client, wire)
            // RSV2 on the first frame only; the payload is transformed.
            #expect(frames.first?.reservedBits == .rsv2)
            #expect(frames.dropFirst().allSatisfy { $0.reservedBits.isEmpty })
            #expect(frames.flatMap(\.payload.bytes) == Array(text.utf8).map { $0 ^ 0x33 })
            server.receive(wire)
            #expect(drain(&server) == [.text(ByteBuffer(string: text))])

            let binary = rng.bytes(size)
            try server.send(binary: ByteBuffer(bytes: binary), fragmentSize: fragment)
            let back = try outbound(of: &server)
            let backFrames = decodeFrames(sentBy: .server, back)
            #expect(backFrames.first?.reservedBits == .rsv2)
            #expect(backFrames.dropFirst().allSatisfy { $0.reservedBits.isEmpty })
            client.receive(back)
            #expect(drain(&client) == [.binary(ByteBuffer(bytes: binary))])
        }
        // An unmarked message (the extension passed it through) is delivered as is.
        try client.send(text: "")
        let empty = try outbound(of: &client)
        #expect(decodeFrames(sentBy: .client, empty).first?.reservedBits == [])
        server.receive(empty)
        #expect(drain(&server) == [.text(ByteBuffer())])
        #expect(feed(&server, Wire.frame(to: .server, .text, "plain")) == [.text(ByteBuffer(string: "plain"))])
        // Control frames never go through the extension.
        try client.ping(ByteBuffer(string: "p"))
        server.receive(try outbound(of: &client))
        #expect(drain(&server) == [.ping(ByteBuffer(string: "p"))])
        #expect(decodeFrames(sentBy: .server, server.takeOutbound()) == [Frame(opcode: .pong, payload: ByteBuffer(string: "p"))])
    }

    @Test func decodedTextIsValidated() throws {
        var (_, server) = try Self.pair()
        // 0xFF after decoding (0xFF ^ 0x33 on the wire).
        let events = feed(&server, Wire.frame(to: .server, .text, [0x61 ^ 0x33, 0xFF ^ 0x33], rsv: .rsv2))
        #expect(events == [.failed(ProtocolError(.invalidUTF8))])
        #expect(decodeFrames(sentBy: .server, server.takeOutbound()).first.flatMap(closeCode(of:)) == 1007)
    }

    @Test func rsv2WithoutTheExtensionFails() {
        for role in [Role.client, .server] {
            ProtocolErrorTests.expectFailure(role, Wire.frame(to: role, .binary, [1, 2, 3], rsv: .rsv2), code: .protocolError,
                                             kind: .reservedBitsSet(.rsv2))
        }
        // With the extension, bits it does not own still fail.
        var server = Connection(role: .server, extensions: [XorExtension()])
        #expect(failure(in: feed(&server, Wire.frame(to: .server, .binary, [1], rsv: .rsv1)))
                == ProtocolError(.reservedBitsSet(.rsv1)))
    }

    @Test(arguments: [Role.client, .server])
    func reservedBitsOnAContinuationFail(role: Role) {
        var connection = Connection(role: role, extensions: [XorExtension()])
        let stream = Wire.frame(to: role, .binary, [1, 2], fin: false, rsv: .rsv2)
            + Wire.frame(to: role, .continuation, [3], rsv: .rsv2)
        let events = feed(&connection, stream)
        #expect(events.count == 1)
        #expect(failure(in: events)?.closeCode == .protocolError)
        #expect(failure(in: events)?.kind == .reservedBitsSet(.rsv2))
        #expect(decodeFrames(sentBy: role, connection.takeOutbound()).first.flatMap(closeCode(of:)) == 1002)
    }

    /// Control frames are never marked by an extension: an RSV bit on one is a protocol error
    /// even when a negotiated extension owns that bit.
    @Test(arguments: [Role.client, .server])
    func reservedBitsOnAControlFrameFail(role: Role) {
        for opcode in [Opcode.ping, .pong, .close] {
            var connection = Connection(role: role, extensions: [XorExtension()])
            let payload: [UInt8] = opcode == .close ? [0x03, 0xE8] : [1]
            let events = feed(&connection, Wire.frame(to: role, opcode, payload, rsv: .rsv2))
            #expect(failure(in: events)?.closeCode == .protocolError, "\(opcode)")
            #expect(failure(in: events)?.kind == .reservedBitsSet(.rsv2), "\(opcode)")
        }
    }

    @Test func decodeLimitGives1009() throws {
        let limits = Limits(maxFrameSize: 1 << 20, maxMessageSize: 100)
        // One frame over the message limit.
        var server = Connection(role: .server, configuration: .init(limits: limits), extensions: [XorExtension(pad: 0x33)])
        let events = feed(&server, Wire.frame(to: .server, .binary, [UInt8](repeating: 1, count: 101), rsv: .rsv2))
        #expect(failure(in: events)?.closeCode == .messageTooBig)
        #expect(decodeFrames(sentBy: .server, server.takeOutbound()).first.flatMap(closeCode(of:)) == 1009)

        // Across fragments: maxOutput is what is left of the limit.
        var other = Connection(role: .server, configuration: .init(limits: limits), extensions: [XorExtension(pad: 0x33)])
        let first = Wire.frame(to: .server, .binary, [UInt8](repeating: 1, count: 60), fin: false, rsv: .rsv2)
        #expect(feed(&other, first) == [])
        let second = feed(&other, Wire.frame(to: .server, .continuation, [UInt8](repeating: 1, count: 41)))
        #expect(failure(in: second)?.closeCode == .messageTooBig)

        // At the limit: fine.
        var fine = Connection(role: .server, configuration: .init(limits: limits), extensions: [XorExtension(pad: 0x33)])
        #expect(feed(&fine, first + Wire.frame(to: .server, .continuation, [UInt8](repeating: 1, count: 40)))
                == [.binary(ByteBuffer(repeating: 1 ^ 0x33, count: 100))])
    }

    @Test func extensionErrorsMapToCloseCodes() {
        #expect(ExtensionError.messageTooBig.protocolError.closeCode == .messageTooBig)
        #expect(ExtensionError.invalidData("x").protocolError.closeCode == .invalidPayloadData)
        #expect(ExtensionError.internalError("x").protocolError.closeCode == .internalError)
    }

    /// Decode failures fail the connection with the error's code; the close frame stays valid
    /// (at most 125 bytes, UTF-8) even with a long non-ASCII message.
    @Test(arguments: [(ExtensionError.invalidData(String(repeating: "é", count: 100)), UInt16(1007)),
                      (.internalError(String(repeating: "ø", count: 99) + "x"), 1011), (.messageTooBig, 1009)])
    func decodeFailuresFailTheConnection(error: ExtensionError, code: UInt16) {
        var server = Connection(role: .server, extensions: [FailingExtension(error: error)])
        let events = feed(&server, Wire.frame(to: .server, .binary, [1, 2, 3], rsv: .rsv2))
        #expect(failure(in: events)?.closeCode.rawValue == code)
        let close = decodeFrames(sentBy: .server, server.takeOutbound())
        #expect(close.count == 1)
        #expect(close.first.flatMap(closeCode(of:)) == code)
        #expect((close.first?.payload.readableBytes ?? 126) <= 125)
        #expect(close.first.flatMap { try? Connection.parseClosePayload($0.payload) }?.code?.rawValue == code)
    }

    @Test func encodeFailureIsASendError() {
        var client = Connection(role: .client, extensions: [FailingExtension(error: .internalError("no"))])
        #expect(throws: SendError.extensionFailed(.internalError("no"))) { try client.send(text: "x") }
        #expect(client.takeOutbound() == nil)
        #expect(client.state == .open)
    }

    @Test func shutdownIsCalledOnce() {
        let ext = XorExtension()
        var connection = Connection(role: .client, extensions: [ext])
        connection.transportClosed()
        connection.transportClosed()
        #expect(ext.shutdownCount == 1)
    }
}
