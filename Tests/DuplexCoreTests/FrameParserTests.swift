import NIOCore
import Testing
@testable import DuplexCore

/// FrameHeader decoding and FrameParser's frame-level rules, checked from the header alone.
@Suite struct FrameParserTests {
    static func parser(_ role: Role, allowed: ReservedBits = [], maxFrameSize: Int = Limits.default.maxFrameSize,
                       _ bytes: [UInt8]) -> FrameParser {
        var parser = FrameParser(role: role, allowedReservedBits: allowed, maxFrameSize: maxFrameSize)
        parser.append(ByteBuffer(bytes: bytes))
        return parser
    }

    static func headerError(_ role: Role, allowed: ReservedBits = [], maxFrameSize: Int = Limits.default.maxFrameSize,
                            _ bytes: [UInt8]) -> ProtocolError? {
        var parser = parser(role, allowed: allowed, maxFrameSize: maxFrameSize, bytes)
        do {
            _ = try parser.nextHeader()
            return nil
        } catch {
            return error
        }
    }

    @Test func incompleteHeadersNeedMoreBytes() throws {
        let headers: [[UInt8]] = [
            [0x81, 0x05],
            [0x81, 0x85, 1, 2, 3, 4],
            [0x82, 0x7E, 0x01, 0x00],
            [0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4],
            [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0],
            [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4],
        ]
        for header in headers {
            for cut in 0..<header.count {
                #expect(try FrameHeader.decode(ByteBuffer(bytes: header[..<cut])) == nil, "\(header) cut at \(cut)")
            }
            let decoded = try #require(try FrameHeader.decode(ByteBuffer(bytes: header)))
            #expect(decoded.size == header.count)
            #expect(decoded.header.encodedSize == header.count)
        }
    }

    @Test func decodeReadsEveryField() throws {
        let decoded = try #require(try FrameHeader.decode(ByteBuffer(bytes: [0x72, 0x83, 9, 8, 7, 6])))
        #expect(decoded.header == FrameHeader(fin: false, reservedBits: [.rsv1, .rsv2, .rsv3], opcode: .binary,
                                              maskKey: MaskKey(9, 8, 7, 6), payloadLength: 3))
        // decode does not consume.
        let buffer = ByteBuffer(bytes: [0x81, 0x00])
        _ = try FrameHeader.decode(buffer)
        #expect(buffer.readableBytes == 2)
    }

    @Test func headerRoundTripsForEveryLengthClass() throws {
        var rng = SeededGenerator(seed: 1)
        for length in [0, 1, 125, 126, 127, 65535, 65536, 1 << 32, Int.max] {
            for key in [nil, MaskKey.random(using: &rng)] {
                let header = FrameHeader(fin: length % 2 == 0, reservedBits: .rsv2, opcode: .binary, maskKey: key,
                                         payloadLength: length)
                var out = ByteBuffer()
                header.write(to: &out)
                let decoded = try #require(try FrameHeader.decode(out))
                #expect(decoded.header == header)
                #expect(decoded.size == out.readableBytes)
            }
        }
    }

    @Test(arguments: [UInt8](0x3...0x7) + [UInt8](0xB...0xF))
    func reservedOpcodes(opcode: UInt8) {
        #expect(throws: ProtocolError(.reservedOpcode(opcode))) {
            try FrameHeader.decode(ByteBuffer(bytes: [0x80 | opcode, 0x00]))
        }
        for role in [Role.client, .server] {
            let error = Self.headerError(role, Wire.header(to: role, first: 0x80 | opcode, lengthByte: 0))
            #expect(error == ProtocolError(.reservedOpcode(opcode)))
            #expect(error?.closeCode == .protocolError)
        }
    }

    @Test func lengthWithMostSignificantBitSet() {
        let length: [UInt8] = [0x80, 0, 0, 0, 0, 0, 0, 0x05]
        #expect(throws: ProtocolError(.invalidPayloadLength)) {
            try FrameHeader.decode(ByteBuffer(bytes: [0x82, 0x7F] + length))
        }
        for role in [Role.client, .server] {
            let error = Self.headerError(role, Wire.header(to: role, first: 0x82, lengthByte: 127, extended: length))
            #expect(error == ProtocolError(.invalidPayloadLength))
            #expect(error?.closeCode == .protocolError)
        }
        // The largest allowed 63-bit length decodes (and is refused by the size limit instead).
        let largest: [UInt8] = [0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        let error = Self.headerError(.client, Wire.header(to: .client, first: 0x82, lengthByte: 127, extended: largest))
        #expect(error == ProtocolError(.frameTooBig(size: Int.max, limit: Limits.default.maxFrameSize)))
    }

    @Test func reservedBitsWithoutAnExtension() {
        for role in [Role.client, .server] {
            for bits in [ReservedBits.rsv1, .rsv2, .rsv3, [.rsv1, .rsv3]] {
                let header = Wire.header(to: role, first: 0x81 | bits.rawValue, lengthByte: 0)
                #expect(Self.headerError(role, header) == ProtocolError(.reservedBitsSet(bits)))
                // Allowed when an extension owns them.
                #expect(Self.headerError(role, allowed: bits, header) == nil)
            }
            // Only the bits nobody owns are reported.
            let header = Wire.header(to: role, first: 0x81 | 0x60, lengthByte: 0)
            #expect(Self.headerError(role, allowed: .rsv1, header) == ProtocolError(.reservedBitsSet(.rsv2)))
        }
    }

    @Test func controlFrameRules() {
        for role in [Role.client, .server] {
            for opcode: UInt8 in [0x8, 0x9, 0xA] {
                // 126 bytes announced: refused from the header (no payload needed).
                let long = Wire.header(to: role, first: 0x80 | opcode, lengthByte: 126, extended: [0x00, 0x7E])
                #expect(Self.headerError(role, long) == ProtocolError(.controlFrameTooLong(126)))
                let ok = Wire.header(to: role, first: 0x80 | opcode, lengthByte: 125)
                #expect(Self.headerError(role, ok) == nil)
                let fragmented = Wire.header(to: role, first: opcode, lengthByte: 0)
                #expect(Self.headerError(role, fragmented) == ProtocolError(.fragmentedControlFrame))
            }
        }
    }

    @Test func maskingRuleOfTheRole() {
        #expect(Self.headerError(.server, Wire.frame(.text, "hi")) == ProtocolError(.unmaskedFrame))
        #expect(Self.headerError(.client, Wire.frame(.text, "hi", key: rfcKey)) == ProtocolError(.maskedFrame))
        #expect(Self.headerError(.server, Wire.frame(.text, "hi", key: rfcKey)) == nil)
        #expect(Self.headerError(.client, Wire.frame(.text, "hi")) == nil)
    }

    @Test func frameSizeLimitFromTheHeaderAlone() {
        for role in [Role.client, .server] {
            let over = Wire.header(to: role, first: 0x82, lengthByte: 126, extended: [0x03, 0xE9])  // 1001
            #expect(Self.headerError(role, maxFrameSize: 1000, over) == ProtocolError(.frameTooBig(size: 1001, limit: 1000)))
            let at = Wire.header(to: role, first: 0x82, lengthByte: 126, extended: [0x03, 0xE8])  // 1000
            #expect(Self.headerError(role, maxFrameSize: 1000, at) == nil)
        }
        #expect(ProtocolError(.frameTooBig(size: 1, limit: 0)).closeCode == .messageTooBig)
    }

    /// Frames come out the same whether the bytes arrive whole, byte by byte, or in random pieces.
    @Test(arguments: [Role.client, .server])
    func incrementalParsing(role: Role) throws {
        var rng = SeededGenerator(seed: role == .server ? 21 : 22)
        var stream: [UInt8] = []
        var expected: [Frame] = []
        for (opcode, length, fin) in [(Opcode.text, 0, true), (.binary, 1, false), (.continuation, 126, false),
                                      (.ping, 125, true), (.continuation, 3000, true), (.close, 2, true)] {
            let payload = rng.bytes(length)
            let key: MaskKey? = role == .server ? MaskKey.random(using: &rng) : nil
            stream += Wire.frame(opcode, payload, fin: fin, key: key)
            expected.append(Frame(fin: fin, opcode: opcode, maskKey: key, payload: ByteBuffer(bytes: payload)))
        }
        func run(_ pieces: [Int]) throws -> [Frame] {
            var parser = FrameParser(role: role)
            var frames: [Frame] = []
            var start = 0
            for size in pieces {
                parser.append(ByteBuffer(bytes: stream[start..<(start + size)]))
                start += size
                while let frame = try parser.nextFrame() { frames.append(frame) }
            }
            #expect(parser.bufferedBytes == 0)
            return frames
        }
        #expect(try run([stream.count]) == expected)
        #expect(try run(rng.splits(of: stream.count, maxPiece: 1)) == expected)
        for _ in 0..<5 {
            #expect(try run(rng.splits(of: stream.count, maxPiece: 700)) == expected)
        }
        // A frame with a 64-bit length, in random pieces.
        let big = rng.bytes(65536)
        let key: MaskKey? = role == .server ? MaskKey.random(using: &rng) : nil
        stream += Wire.frame(.binary, big, key: key)
        expected.append(Frame(opcode: .binary, maskKey: key, payload: ByteBuffer(bytes: big)))
        #expect(try run([stream.count]) == expected)
        #expect(try run(rng.splits(of: stream.count, maxPiece: 5000)) == expected)
    }

    /// Many small frames in large reads: the parser compacts its buffer between reads (read bytes
    /// discarded) while a header or a partly unmasked payload is pending.
    @Test(arguments: [Role.client, .server])
    func compactionBetweenReads(role: Role) throws {
        var rng = SeededGenerator(seed: 31)
        var stream: [UInt8] = []
        var payloads: [[UInt8]] = []
        for i in 0..<300 {
            let payload = rng.bytes(i % 7 == 0 ? 700 : Int.random(in: 0...150, using: &rng))
            payloads.append(payload)
            stream += Wire.frame(.binary, payload, key: role == .server ? MaskKey.random(using: &rng) : nil)
        }
        for pieceRange in [4000...6000, 4097...4200, 9000...12000] {
            var parser = FrameParser(role: role)
            var received: [[UInt8]] = []
            var start = 0
            while start < stream.count {
                let end = min(stream.count, start + Int.random(in: pieceRange, using: &rng))
                parser.append(ByteBuffer(bytes: stream[start..<end]))
                start = end
                while let frame = try parser.nextFrame() { received.append(frame.payload.bytes) }
            }
            #expect(received == payloads)
            #expect(parser.bufferedBytes == 0)
        }
    }

    @Test func partialPayloadIsAvailableBeforeTheFrameCompletes() throws {
        let payload = Array("partial payload".utf8)
        let frame = Wire.frame(.text, payload, key: rfcKey)
        var parser = FrameParser(role: .server)
        parser.append(ByteBuffer(bytes: frame[..<10]))  // 6 header bytes, 4 payload bytes
        let header = try #require(try parser.nextHeader())
        #expect(header.payloadLength == payload.count)
        #expect(parser.takePayload() == nil)
        #expect(parser.availablePayloadCount == 4)
        #expect(parser.withAvailablePayload(from: 0) { Array($0) } == Array(payload[..<4]))  // already unmasked
        parser.append(ByteBuffer(bytes: frame[10...]))
        #expect(parser.availablePayloadCount == payload.count)
        #expect(parser.withAvailablePayload(from: 4) { Array($0) } == Array(payload[4...]))
        #expect(parser.takePayload()?.bytes == payload)
        #expect(try parser.nextFrame() == nil)
    }

    @Test func appendDoesNotModifyTheCallersBuffer() throws {
        let wire = Wire.frame(.binary, Array("masked".utf8), key: rfcKey)
        let buffer = ByteBuffer(bytes: wire)
        var parser = FrameParser(role: .server)
        parser.append(buffer)
        #expect(try parser.nextFrame()?.payload.bytes == Array("masked".utf8))
        #expect(buffer.bytes == wire)
    }
}
