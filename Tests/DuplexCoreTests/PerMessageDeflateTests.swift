import NIOCore
import Testing
@testable import DuplexCore

/// permessage-deflate (RFC 7692): the §7.2.3 examples, negotiation, limits.
@Suite struct PerMessageDeflateTests {
    static let helloCompressed: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]

    func codec(localNoContextTakeover: Bool = false, peerNoContextTakeover: Bool = false,
               configuration: PerMessageDeflateConfiguration = .init(minimumMessageSize: 0)) -> PerMessageDeflate {
        PerMessageDeflate(configuration: configuration, localWindowBits: 15, localNoContextTakeover: localNoContextTakeover,
                          peerWindowBits: 15, peerNoContextTakeover: peerNoContextTakeover)
    }

    func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

    @Test func rfcHelloCompresses() throws {
        let encoded = try #require(try codec().encode(message: ByteBuffer(string: "Hello"), opcode: .text))
        #expect(bytes(encoded.payload) == Self.helloCompressed)
        #expect(encoded.reservedBits == .rsv1)
    }

    @Test func rfcHelloInflates() throws {
        let decoded = try codec().decode(frame: ByteBuffer(bytes: Self.helloCompressed), isFinal: true, maxOutput: 1000)
        #expect(String(buffer: decoded) == "Hello")
    }

    /// §7.2.3.2: "Hello" sent twice with context takeover: the second refers back to the first.
    @Test func rfcContextTakeover() throws {
        let sender = codec()
        let first = try #require(try sender.encode(message: ByteBuffer(string: "Hello"), opcode: .text))
        let second = try #require(try sender.encode(message: ByteBuffer(string: "Hello"), opcode: .text))
        #expect(bytes(first.payload) == Self.helloCompressed)
        #expect(bytes(second.payload) == [0xF2, 0x00, 0x11, 0x00, 0x00])
        let receiver = codec()
        #expect(String(buffer: try receiver.decode(frame: first.payload, isFinal: true, maxOutput: 100)) == "Hello")
        #expect(String(buffer: try receiver.decode(frame: second.payload, isFinal: true, maxOutput: 100)) == "Hello")
    }

    /// Without context takeover both messages compress alike, and the zlib stream is freed.
    @Test func noContextTakeoverResets() throws {
        let sender = codec(localNoContextTakeover: true)
        let first = try #require(try sender.encode(message: ByteBuffer(string: "Hello Hello Hello"), opcode: .text))
        #expect(!sender.holdsCompressor)
        let second = try #require(try sender.encode(message: ByteBuffer(string: "Hello Hello Hello"), opcode: .text))
        #expect(bytes(first.payload) == bytes(second.payload))
        let receiver = codec(peerNoContextTakeover: true)
        _ = try receiver.decode(frame: first.payload, isFinal: true, maxOutput: 100)
        #expect(!receiver.holdsDecompressor)
    }

    /// §7.2.3.3: the same message split over two frames; §7.2.3.6: an empty message is a single 0x00.
    @Test func rfcFragmentedAndEmptyBlock() throws {
        let receiver = codec()
        let a = try receiver.decode(frame: ByteBuffer(bytes: [0xF2, 0x48, 0xCD]), isFinal: false, maxOutput: 100)
        let b = try receiver.decode(frame: ByteBuffer(bytes: [0xC9, 0xC9, 0x07, 0x00]), isFinal: true, maxOutput: 100)
        #expect(String(buffer: a) + String(buffer: b) == "Hello")
        let empty = try codec().decode(frame: ByteBuffer(bytes: [0x00]), isFinal: true, maxOutput: 100)
        #expect(empty.readableBytes == 0)
    }

    /// §7.2.3.4: "Hello" as a stored (uncompressed) deflate block also decodes.
    @Test func rfcStoredBlock() throws {
        let stored: [UInt8] = [0x00, 0x05, 0x00, 0xFA, 0xFF, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x00]
        #expect(String(buffer: try codec().decode(frame: ByteBuffer(bytes: stored), isFinal: true, maxOutput: 100)) == "Hello")
    }

    /// A small frame that inflates far past the limit fails with 1009 without allocating it.
    @Test func decompressionBomb() throws {
        let sender = codec()
        let zeros = ByteBuffer(repeating: 0, count: 8 << 20)
        let bomb = try #require(try sender.encode(message: zeros, opcode: .binary)).payload
        #expect(bomb.readableBytes < 16 * 1024)
        #expect(throws: ExtensionError.messageTooBig) {
            _ = try codec().decode(frame: bomb, isFinal: true, maxOutput: 64 * 1024)
        }
        // Through a connection: close 1009.
        let deflate = PerMessageDeflate.ServerNegotiator().accept(offers: [ExtensionOffer(name: "permessage-deflate")])!
        var server = Connection(role: .server, configuration: .init(limits: Limits(maxFrameSize: 1 << 20, maxMessageSize: 64 * 1024)),
                                extensions: [deflate.extension])
        var wire = ByteBuffer()
        FrameWriter.write(reservedBits: .rsv1, opcode: .binary, maskKey: MaskKey(1, 2, 3, 4), payload: bomb, to: &wire)
        server.receive(wire)
        let event = server.nextEvent()
        guard case .failed(let error) = event else {
            Issue.record("expected a failure, got \(String(describing: event))")
            return
        }
        #expect(error.closeCode == .messageTooBig)
    }

    /// Whatever the limit, a message that inflates past it fails: no call returns more than the
    /// `maxOutput` it was given (ByteBuffer rounds a reservation up to a power of two, and zlib
    /// used to fill the rounding when a frame's input ended as the output filled; found by
    /// FuzzInflate, whose reproducer is also a seed in Fuzz/seeds/FuzzInflate/).
    @Test func decodeNeverReturnsMoreThanTheLimit() throws {
        for size in [20_000, 70_000] {
            let message = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 5) })
            let compressed = try #require(try codec().encode(message: message, opcode: .binary)).payload
            for frameSize in [1, 7, 64] {
                for limit in stride(from: 4_001, to: size, by: 1_999) {
                    let receiver = codec()
                    defer { receiver.shutdown() }
                    var rest = compressed
                    var produced = 0
                    while let frame = rest.readSlice(length: min(frameSize, rest.readableBytes)), frame.readableBytes > 0 {
                        let maxOutput = limit - produced
                        do {
                            let output = try receiver.decode(frame: frame, isFinal: rest.readableBytes == 0, maxOutput: maxOutput)
                            #expect(output.readableBytes <= maxOutput, "returned \(output.readableBytes) with maxOutput \(maxOutput)")
                            produced += output.readableBytes
                        } catch {
                            #expect(error == .messageTooBig)
                            break
                        }
                    }
                    #expect(produced <= limit, "\(size) bytes, limit \(limit), frames of \(frameSize): \(produced) bytes out")
                }
            }
        }
    }

    @Test func corruptDataFailsWith1007() {
        #expect(throws: ExtensionError.self) {
            _ = try codec().decode(frame: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF]), isFinal: true, maxOutput: 100)
        }
    }

    /// Messages round-trip through two connections, fragmented and not, RSV1 on the first frame only.
    @Test func roundTripThroughConnections() throws {
        let client = PerMessageDeflate.ClientNegotiator(configuration: .init(minimumMessageSize: 0))
        let accepted = try #require(PerMessageDeflate.ServerNegotiator(configuration: .init(minimumMessageSize: 0))
            .accept(offers: client.offers()))
        let clientExtension = try client.accept(response: accepted.response)
        var clientSide = Connection(role: .client, extensions: [clientExtension])
        var serverSide = Connection(role: .server, extensions: [accepted.extension])
        let text = String(repeating: "{\"price\": 101.25, \"symbol\": \"DPLX\"} ", count: 200)
        for fragmentSize in [nil, 100] as [Int?] {
            try clientSide.send(text: text, fragmentSize: fragmentSize)
            let out1 = clientSide.takeOutbound()
            var wire = try #require(out1)
            #expect(wire.readableBytes < text.utf8.count / 4)
            // RSV1 on the first frame only.
            var parser = FrameParser(role: .server, allowedReservedBits: .rsv1)
            parser.append(wire)
            var first = true
            while let frame = try parser.nextFrame() {
                #expect(frame.reservedBits == (first ? .rsv1 : []))
                first = false
            }
            serverSide.receive(wire)
            #expect(serverSide.nextEvent() == .text(ByteBuffer(string: text)))
            try serverSide.send(text: text)
            let out2 = serverSide.takeOutbound()
            wire = try #require(out2)
            clientSide.receive(wire)
            #expect(clientSide.nextEvent() == .text(ByteBuffer(string: text)))
        }
    }

    // MARK: Negotiation

    func serverAccept(_ header: String, configuration: PerMessageDeflateConfiguration = .init()) throws -> String? {
        let offers = try ExtensionOffer.parse([header])
        return PerMessageDeflate.ServerNegotiator(configuration: configuration).accept(offers: offers)?.response.description
    }

    @Test(arguments: [
        ("permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        ("permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
        ("permessage-deflate; client_no_context_takeover", "permessage-deflate"),
        ("permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10"),
        ("permessage-deflate; client_max_window_bits=9", "permessage-deflate; client_max_window_bits=9"),
        ("permessage-deflate; server_max_window_bits=\"12\"", "permessage-deflate; server_max_window_bits=12"),
        // Bad parameters decline that offer; the next acceptable one is taken.
        ("permessage-deflate; server_max_window_bits=16, permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; foo=1, permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", nil),
        ("permessage-deflate; server_max_window_bits", nil),
        ("permessage-deflate; server_max_window_bits=08", nil),
        // 1*DIGIT: no sign (found by FuzzExtensions; `Int("+9")` is 9).
        ("permessage-deflate; server_max_window_bits=+9", nil),
        ("permessage-deflate; client_max_window_bits=+10", nil),
        ("permessage-deflate; server_max_window_bits=7", nil),
        ("permessage-deflate; client_no_context_takeover=1", nil),
        ("x-webkit-deflate-frame", nil),
    ] as [(String, String?)])
    func serverNegotiation(offer: String, expected: String?) throws {
        let offers = try ExtensionOffer.parse([offer]).filter { $0.name == "permessage-deflate" }
        let answer = PerMessageDeflate.ServerNegotiator().accept(offers: offers)?.response.description
        #expect(answer == expected)
    }

    @Test func serverRequestsFromConfiguration() throws {
        let configuration = PerMessageDeflateConfiguration(noContextTakeover: true, requestPeerNoContextTakeover: true,
                                                           maxWindowBits: 12, requestPeerMaxWindowBits: 10)
        #expect(try serverAccept("permessage-deflate; client_max_window_bits", configuration: configuration)
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=10")
        // A client that did not offer client_max_window_bits is not limited.
        #expect(try serverAccept("permessage-deflate", configuration: configuration)
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12")
    }

    /// zlib cannot compress with 8 window bits: the server accepts and sends uncompressed.
    @Test func windowBitsEightSendsUncompressed() throws {
        let offers = try ExtensionOffer.parse(["permessage-deflate; server_max_window_bits=8"])
        let accepted = try #require(PerMessageDeflate.ServerNegotiator().accept(offers: offers))
        #expect(accepted.response.description == "permessage-deflate; server_max_window_bits=8")
        #expect(try accepted.extension.encode(message: ByteBuffer(repeating: 65, count: 1000), opcode: .binary) == nil)
    }

    @Test func clientChecksTheAnswer() throws {
        let client = PerMessageDeflate.ClientNegotiator(configuration: .init(requestPeerNoContextTakeover: true, maxWindowBits: 12,
                                                                             requestPeerMaxWindowBits: 10))
        #expect(client.offers().map(\.description)
            == ["permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"])
        func answer(_ header: String) throws -> any WebSocketExtension {
            try client.accept(response: try ExtensionOffer.parse([header])[0])
        }
        _ = try answer("permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
        _ = try answer("permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=11")
        for bad in [
            "permessage-deflate; server_max_window_bits=10",  // no server_no_context_takeover
            "permessage-deflate; server_no_context_takeover",  // no server_max_window_bits
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",  // above the request
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=13",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; mystery",
        ] {
            #expect(throws: HandshakeError.self, "\(bad)") { _ = try answer(bad) }
        }
    }
}
