import NIOCore

/// The decoded header of a frame: everything but the payload bytes.
public struct FrameHeader: Sendable, Hashable {
    /// Whether the frame is the last of its message (FIN bit).
    public var fin: Bool
    /// The RSV1-3 bits.
    public var reservedBits: ReservedBits
    /// The frame's opcode.
    public var opcode: Opcode
    /// The masking key, nil for an unmasked frame.
    public var maskKey: MaskKey?
    /// The payload's length in bytes, as the header encodes it (7, 16 or 64 bits on the wire).
    public var payloadLength: Int

    /// A header; by default the last frame of its message, with no reserved bits and unmasked.
    public init(fin: Bool = true, reservedBits: ReservedBits = [], opcode: Opcode, maskKey: MaskKey? = nil, payloadLength: Int) {
        self.fin = fin
        self.reservedBits = reservedBits
        self.opcode = opcode
        self.maskKey = maskKey
        self.payloadLength = payloadLength
    }

    /// Bytes the encoded header takes: 2, plus 2 (lengths 126...65535) or 8 (larger), plus 4 if masked.
    @inlinable
    public static func encodedSize(payloadLength: Int, masked: Bool) -> Int {
        let base = payloadLength < 126 ? 2 : (payloadLength <= 0xFFFF ? 4 : 10)
        return masked ? base + 4 : base
    }

    /// Bytes this header takes on the wire: ``encodedSize(payloadLength:masked:)`` for its own length and mask.
    @inlinable
    public var encodedSize: Int { Self.encodedSize(payloadLength: payloadLength, masked: maskKey != nil) }

    /// Appends the header in wire format, with the shortest length encoding (RFC 6455 §5.2).
    @inlinable
    public func write(to buffer: inout ByteBuffer) {
        precondition(payloadLength >= 0)
        let first = (fin ? 0x80 : 0) | reservedBits.rawValue | opcode.rawValue
        let maskBit: UInt8 = maskKey != nil ? 0x80 : 0
        if payloadLength < 126 {
            buffer.writeMultipleIntegers(first, maskBit | UInt8(payloadLength))
        } else if payloadLength <= 0xFFFF {
            buffer.writeMultipleIntegers(first, maskBit | 126, UInt16(payloadLength))
        } else {
            buffer.writeMultipleIntegers(first, maskBit | 127, UInt64(payloadLength))
        }
        if let key = maskKey {
            // Wire order: byte 0 first. `packed` keeps byte 0 lowest, so write it little-endian.
            buffer.writeInteger(key.packed, endianness: .little)
        }
    }

    /// Decodes a header from the start of `bytes` without consuming it.
    /// - Returns: the header and its encoded size, or nil when more bytes are needed.
    /// - Throws: reserved opcodes and a 64-bit length with its top bit set, which no
    ///   configuration allows. Role- and extension-dependent rules are the parser's.
    @inlinable
    public static func decode(_ bytes: ByteBuffer) throws(ProtocolError) -> (header: FrameHeader, size: Int)? {
        try decode(bytes, at: bytes.readerIndex)
    }

    /// Decodes a header that starts at `index` of `bytes` (see ``decode(_:)``).
    @inlinable
    public static func decode(_ bytes: ByteBuffer, at index: Int) throws(ProtocolError) -> (header: FrameHeader, size: Int)? {
        guard let (b0, b1) = bytes.getMultipleIntegers(at: index, as: (UInt8, UInt8).self) else {
            return nil
        }
        guard let opcode = Opcode(rawValue: b0 & 0x0F) else {
            throw ProtocolError(.reservedOpcode(b0 & 0x0F))
        }
        let masked = b1 & 0x80 != 0
        var size = 2
        var length = Int(b1 & 0x7F)
        if length == 126 {
            guard let l = bytes.getInteger(at: index + 2, as: UInt16.self) else { return nil }
            length = Int(l)
            size = 4
        } else if length == 127 {
            guard let l = bytes.getInteger(at: index + 2, as: UInt64.self) else { return nil }
            guard l & (1 << 63) == 0 else { throw ProtocolError(.invalidPayloadLength) }
            length = Int(l)
            size = 10
        }
        var key: MaskKey? = nil
        if masked {
            guard let k = bytes.getInteger(at: index + size, endianness: .little, as: UInt32.self) else {
                return nil
            }
            key = MaskKey(packed: k)
            size += 4
        }
        let header = FrameHeader(
            fin: b0 & 0x80 != 0,
            reservedBits: ReservedBits(rawValue: b0),
            opcode: opcode,
            maskKey: key,
            payloadLength: length
        )
        return (header, size)
    }
}
