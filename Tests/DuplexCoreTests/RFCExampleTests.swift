import NIOCore
import Testing
@testable import DuplexCore

/// The worked examples of RFC 6455 (§1.3 and §5.7), encoded and decoded.
@Suite struct RFCExampleTests {
    static let hello = Array("Hello".utf8)
    static let unmaskedHello: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
    static let maskedHello: [UInt8] = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
    static let fragmentedHello: [UInt8] = [0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F]
    static let unmaskedPing: [UInt8] = [0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]
    static let maskedPong: [UInt8] = [0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]

    static func data(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) } }
    static let binary256: [UInt8] = [0x82, 0x7E, 0x01, 0x00] + data(256)
    static let binary64K: [UInt8] = [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00] + data(65536)

    // MARK: §1.3

    @Test func acceptKeyOfRFCSample() {
        #expect(AcceptKey.accept(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(AcceptKey.guid == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
    }

    // MARK: §5.7 encoding

    @Test func frameWriterEncodesTheVectors() {
        #expect(Wire.frame(.text, Self.hello) == Self.unmaskedHello)
        #expect(Wire.frame(.text, Self.hello, key: rfcKey) == Self.maskedHello)
        #expect(Wire.frame(.text, Array("Hel".utf8), fin: false) + Wire.frame(.continuation, Array("lo".utf8))
                == Self.fragmentedHello)
        #expect(Wire.frame(.ping, Self.hello) == Self.unmaskedPing)
        #expect(Wire.frame(.pong, Self.hello, key: rfcKey) == Self.maskedPong)
        #expect(Wire.frame(.binary, Self.data(256)) == Self.binary256)
        #expect(Wire.frame(.binary, Self.data(65536)) == Self.binary64K)
    }

    @Test func frameWriterEncodesAFrameValue() {
        var out = ByteBuffer()
        FrameWriter.write(Frame(opcode: .pong, maskKey: rfcKey, payload: ByteBuffer(bytes: Self.hello)), to: &out)
        #expect(out.bytes == Self.maskedPong)
    }

    @Test func frameWriterAppendsAfterExistingBytes() {
        // Masking must start at the payload, not at the buffer's start.
        var out = ByteBuffer(bytes: [0xAA, 0xBB, 0xCC])
        FrameWriter.write(opcode: .text, maskKey: rfcKey, payload: ByteBuffer(bytes: Self.hello), to: &out)
        #expect(out.bytes == [0xAA, 0xBB, 0xCC] + Self.maskedHello)
    }

    @Test func frameHeaderWritesTheVectorHeaders() {
        func header(_ h: FrameHeader) -> [UInt8] {
            var out = ByteBuffer()
            h.write(to: &out)
            #expect(out.readableBytes == h.encodedSize)
            return out.bytes
        }
        #expect(header(FrameHeader(opcode: .text, payloadLength: 5)) == [0x81, 0x05])
        #expect(header(FrameHeader(opcode: .text, maskKey: rfcKey, payloadLength: 5)) == [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D])
        #expect(header(FrameHeader(fin: false, opcode: .text, payloadLength: 3)) == [0x01, 0x03])
        #expect(header(FrameHeader(opcode: .continuation, payloadLength: 2)) == [0x80, 0x02])
        #expect(header(FrameHeader(opcode: .ping, payloadLength: 5)) == [0x89, 0x05])
        #expect(header(FrameHeader(opcode: .binary, payloadLength: 256)) == [0x82, 0x7E, 0x01, 0x00])
        #expect(header(FrameHeader(opcode: .binary, payloadLength: 65536))
                == [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00])
        #expect(header(FrameHeader(fin: true, reservedBits: [.rsv1, .rsv3], opcode: .binary, payloadLength: 0)) == [0xD2, 0x00])
    }

    @Test func serverConnectionSendsTheVectors() throws {
        var server = Connection(role: .server)
        try server.send(text: "Hello")
        #expect(server.takeOutbound()?.bytes == Self.unmaskedHello)
        try server.send(text: "Hello", fragmentSize: 3)
        #expect(server.takeOutbound()?.bytes == Self.fragmentedHello)
        try server.ping(ByteBuffer(bytes: Self.hello))
        #expect(server.takeOutbound()?.bytes == Self.unmaskedPing)
        try server.send(binary: ByteBuffer(bytes: Self.data(256)))
        #expect(server.takeOutbound()?.bytes == Self.binary256)
        try server.send(binary: ByteBuffer(bytes: Self.data(65536)))
        #expect(server.takeOutbound()?.bytes == Self.binary64K)
        #expect(server.takeOutbound() == nil)
        #expect(!server.hasOutbound)
    }

    @Test func clientConnectionMasksTheVectors() throws {
        // The client picks its own keys: unmask with the key on the wire and compare the rest.
        var client = Connection(role: .client)
        try client.send(text: "Hello")
        try client.pong(ByteBuffer(bytes: Self.hello))
        let frames = decodeFrames(sentBy: .client, client.takeOutbound())
        #expect(frames.map(\.opcode) == [.text, .pong])
        #expect(frames.allSatisfy { $0.maskKey != nil && $0.payload.bytes == Self.hello })
        // Re-encoding with the RFC key gives the RFC bytes.
        var out = ByteBuffer()
        for var frame in frames {
            frame.maskKey = rfcKey
            FrameWriter.write(frame, to: &out)
        }
        #expect(out.bytes == Self.maskedHello + Self.maskedPong)
    }

    // MARK: §5.7 decoding

    static func parse(_ bytes: [UInt8], as role: Role) throws -> [Frame] {
        var parser = FrameParser(role: role)
        parser.append(ByteBuffer(bytes: bytes))
        var frames: [Frame] = []
        while let frame = try parser.nextFrame() { frames.append(frame) }
        #expect(parser.bufferedBytes == 0)
        return frames
    }

    @Test func frameParserDecodesTheVectors() throws {
        #expect(try Self.parse(Self.unmaskedHello, as: .client)
                == [Frame(opcode: .text, payload: ByteBuffer(bytes: Self.hello))])
        #expect(try Self.parse(Self.maskedHello, as: .server)
                == [Frame(opcode: .text, maskKey: rfcKey, payload: ByteBuffer(bytes: Self.hello))])
        #expect(try Self.parse(Self.fragmentedHello, as: .client)
                == [Frame(fin: false, opcode: .text, payload: ByteBuffer(string: "Hel")),
                    Frame(opcode: .continuation, payload: ByteBuffer(string: "lo"))])
        #expect(try Self.parse(Self.unmaskedPing, as: .client)
                == [Frame(opcode: .ping, payload: ByteBuffer(bytes: Self.hello))])
        #expect(try Self.parse(Self.maskedPong, as: .server)
                == [Frame(opcode: .pong, maskKey: rfcKey, payload: ByteBuffer(bytes: Self.hello))])
        #expect(try Self.parse(Self.binary256, as: .client)
                == [Frame(opcode: .binary, payload: ByteBuffer(bytes: Self.data(256)))])
        #expect(try Self.parse(Self.binary64K, as: .client)
                == [Frame(opcode: .binary, payload: ByteBuffer(bytes: Self.data(65536)))])
    }

    @Test func frameHeaderDecodesTheVectorHeaders() throws {
        let masked = try #require(try FrameHeader.decode(ByteBuffer(bytes: Self.maskedHello)))
        #expect(masked.header == FrameHeader(opcode: .text, maskKey: rfcKey, payloadLength: 5))
        #expect(masked.size == 6)
        let big = try #require(try FrameHeader.decode(ByteBuffer(bytes: Self.binary64K)))
        #expect(big.header == FrameHeader(opcode: .binary, payloadLength: 65536))
        #expect(big.size == 10)
        let medium = try #require(try FrameHeader.decode(ByteBuffer(bytes: Self.binary256)))
        #expect(medium.header.payloadLength == 256)
        #expect(medium.size == 4)
        let first = try #require(try FrameHeader.decode(ByteBuffer(bytes: Self.fragmentedHello)))
        #expect(first.header == FrameHeader(fin: false, opcode: .text, payloadLength: 3))
        let second = try #require(try FrameHeader.decode(ByteBuffer(bytes: Self.fragmentedHello), at: 5))
        #expect(second.header == FrameHeader(fin: true, opcode: .continuation, payloadLength: 2))
    }

    @Test func clientConnectionDecodesUnmaskedVectors() {
        var client = Connection(role: .client)
        #expect(feed(&client, Self.unmaskedHello) == [.text(ByteBuffer(string: "Hello"))])
        #expect(feed(&client, Self.fragmentedHello) == [.text(ByteBuffer(string: "Hello"))])
        #expect(feed(&client, Self.unmaskedPing) == [.ping(ByteBuffer(string: "Hello"))])
        // The automatic pong: masked, carrying the ping's payload.
        let pong = decodeFrames(sentBy: .client, client.takeOutbound())
        #expect(pong.map(\.opcode) == [.pong])
        #expect(pong.first?.payload.bytes == Self.hello)
        #expect(feed(&client, Self.binary256) == [.binary(ByteBuffer(bytes: Self.data(256)))])
        #expect(feed(&client, Self.binary64K) == [.binary(ByteBuffer(bytes: Self.data(65536)))])
        #expect(client.failure == nil)
    }

    @Test func serverConnectionDecodesMaskedVectors() {
        var server = Connection(role: .server)
        #expect(feed(&server, Self.maskedHello) == [.text(ByteBuffer(string: "Hello"))])
        #expect(feed(&server, Self.maskedPong) == [.pong(ByteBuffer(string: "Hello"))])
        let fragmented = Wire.frame(.text, Array("Hel".utf8), fin: false, key: rfcKey)
            + Wire.frame(.continuation, Array("lo".utf8), key: MaskKey(1, 2, 3, 4))
        #expect(feed(&server, fragmented) == [.text(ByteBuffer(string: "Hello"))])
        #expect(feed(&server, Wire.frame(.binary, Self.data(65536), key: rfcKey))
                == [.binary(ByteBuffer(bytes: Self.data(65536)))])
        #expect(server.takeOutbound() == nil)
        #expect(server.failure == nil)
    }
}
