import NIOCore

/// Encodes frames into bytes (RFC 6455 §5.2).
public enum FrameWriter {
    /// Appends one frame: its header, then `payload`, masked with `header.maskKey` when set.
    /// `header.payloadLength` is taken from `payload`.
    @inlinable
    public static func write(
        fin: Bool = true,
        reservedBits: ReservedBits = [],
        opcode: Opcode,
        maskKey: MaskKey? = nil,
        payload: ByteBuffer,
        to buffer: inout ByteBuffer
    ) {
        let header = FrameHeader(fin: fin, reservedBits: reservedBits, opcode: opcode, maskKey: maskKey,
                                 payloadLength: payload.readableBytes)
        buffer.reserveCapacity(minimumWritableBytes: header.encodedSize + payload.readableBytes)
        header.write(to: &buffer)
        let start = buffer.writerIndex
        var payload = payload
        buffer.writeBuffer(&payload)
        if let key = maskKey {
            let end = buffer.writerIndex
            buffer.withVeryUnsafeMutableBytes { storage in
                Masking.apply(key, to: UnsafeMutableRawBufferPointer(rebasing: storage[start..<end]))
            }
        }
    }

    /// Appends `frame` in wire format.
    @inlinable
    public static func write(_ frame: Frame, to buffer: inout ByteBuffer) {
        write(fin: frame.fin, reservedBits: frame.reservedBits, opcode: frame.opcode, maskKey: frame.maskKey,
              payload: frame.payload, to: &buffer)
    }
}
