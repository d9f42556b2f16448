import NIOCore

/// An incremental frame parser: bytes arrive in any split and come out as frames.
///
/// Frame-level rules are checked as soon as a header is complete, before its payload is
/// buffered: reserved opcodes, RSV bits that no extension owns, control frames that are
/// fragmented or longer than 125 bytes, the masking rule of the role, the most significant
/// bit of a 64-bit length, and the frame size limit.
///
/// Payloads are slices of the read buffer, not copies. In the server role the masked bytes
/// are unmasked in place as they arrive (all frames of a read at once, a word at a time), so
/// a partial text payload can be validated before its frame is complete.
public struct FrameParser {
    /// Which side this parser reads for: a server requires every frame masked, a client refuses masked ones.
    public let role: Role
    /// RSV bits that negotiated extensions own; any other set bit is a protocol error.
    public var allowedReservedBits: ReservedBits
    /// Largest accepted frame payload.
    public var maxFrameSize: Int

    @usableFromInline var buffer: ByteBuffer
    /// The header of the frame whose payload is awaited, once it has been read.
    @usableFromInline var current: FrameHeader?

    // The unmasking walk (server role): how far ahead payload bytes are already unmasked.
    @usableFromInline var walkIndex: Int
    @usableFromInline var walkPayloadRemaining = 0
    @usableFromInline var walkKey: MaskKey?
    @usableFromInline var walkPhase = 0
    @usableFromInline var walkStopped = false

    /// A parser for `role`, with no RSV bits allowed unless given and frames of at most
    /// `maxFrameSize` payload bytes (default 1 MiB, ``Limits/default``).
    public init(role: Role, allowedReservedBits: ReservedBits = [], maxFrameSize: Int = Limits.default.maxFrameSize) {
        self.role = role
        self.allowedReservedBits = allowedReservedBits
        self.maxFrameSize = maxFrameSize
        self.buffer = ByteBuffer.sharedEmpty
        self.walkIndex = buffer.readerIndex
    }

    /// Bytes received but not yet returned as part of a frame.
    public var bufferedBytes: Int { buffer.readableBytes }

    /// Adds received bytes.
    public mutating func append(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        if buffer.readableBytes == 0 {
            // Adopt: no copy. In the server role, keep only the readable bytes: unmasking in
            // place copies a buffer that the transport still shares (copy-on-write), and such a
            // copy takes the buffer's whole slice, which for a receive buffer is its capacity
            // (up to 64 KiB), not the bytes read.
            buffer = role == .server ? bytes.slice() : bytes
            walkIndex = buffer.readerIndex
        } else {
            if buffer.readerIndex >= 4096 && buffer.readerIndex >= buffer.readableBytes {
                let shift = buffer.readerIndex
                buffer.discardReadBytes()
                walkIndex -= shift
            }
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
        if role == .server { unmaskAvailable() }
    }

    /// Unmasks, in place, every payload byte now in the buffer that is not yet unmasked.
    @usableFromInline
    mutating func unmaskAvailable() {
        let end = buffer.writerIndex
        while walkIndex < end && !walkStopped {
            if walkPayloadRemaining > 0 {
                let n = min(walkPayloadRemaining, end - walkIndex)
                if let key = walkKey {
                    let (start, phase) = (walkIndex, walkPhase)
                    buffer.withVeryUnsafeMutableBytes { storage in
                        Masking.apply(key, to: UnsafeMutableRawBufferPointer(rebasing: storage[start..<(start + n)]),
                                      phase: phase)
                    }
                }
                walkIndex += n
                walkPhase = (walkPhase + n) & 3
                walkPayloadRemaining -= n
                continue
            }
            let decoded: (header: FrameHeader, size: Int)?
            do {
                decoded = try FrameHeader.decode(buffer, at: walkIndex)
            } catch {
                walkStopped = true  // the parser reports the error when it gets there
                return
            }
            guard let (header, size) = decoded else { return }
            walkIndex += size
            walkPayloadRemaining = header.payloadLength
            walkKey = header.maskKey
            walkPhase = 0
        }
    }

    /// Reads the next frame header, or returns the one whose payload is still awaited.
    /// - Returns: nil when the header is not complete yet.
    public mutating func nextHeader() throws(ProtocolError) -> FrameHeader? {
        if let current { return current }
        guard let (header, size) = try FrameHeader.decode(buffer) else { return nil }
        try check(header)
        buffer.moveReaderIndex(forwardBy: size)
        current = header
        return header
    }

    @inlinable
    func check(_ header: FrameHeader) throws(ProtocolError) {
        let unowned = header.reservedBits.subtracting(allowedReservedBits)
        if !unowned.isEmpty { throw ProtocolError(.reservedBitsSet(unowned)) }
        if header.opcode.isControl {
            if !header.fin { throw ProtocolError(.fragmentedControlFrame) }
            if header.payloadLength > 125 { throw ProtocolError(.controlFrameTooLong(header.payloadLength)) }
        }
        switch role {
        case .server where header.maskKey == nil: throw ProtocolError(.unmaskedFrame)
        case .client where header.maskKey != nil: throw ProtocolError(.maskedFrame)
        default: break
        }
        if header.payloadLength > maxFrameSize {
            throw ProtocolError(.frameTooBig(size: header.payloadLength, limit: maxFrameSize))
        }
    }

    /// The payload of the current frame, unmasked, once all of it has arrived.
    public mutating func takePayload() -> ByteBuffer? {
        guard let header = current, buffer.readableBytes >= header.payloadLength else { return nil }
        current = nil
        let payload = buffer.readSlice(length: header.payloadLength)
        if buffer.readableBytes == 0 {
            // Everything read is consumed: let go of the read's storage (an idle connection then
            // holds no receive buffer; the next read is adopted as it comes).
            buffer = ByteBuffer.sharedEmpty
            walkIndex = buffer.readerIndex
        }
        return payload
    }

    /// Payload bytes of the current frame that have arrived so far (already unmasked).
    public var availablePayloadCount: Int {
        guard let header = current else { return 0 }
        return min(header.payloadLength, buffer.readableBytes)
    }

    /// Calls `body` with the current frame's payload bytes from `offset` to what has arrived.
    public func withAvailablePayload<T>(from offset: Int, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        let end = availablePayloadCount
        return buffer.withUnsafeReadableBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[min(offset, end)..<end]))
        }
    }

    /// The next complete frame, or nil when more bytes are needed.
    public mutating func nextFrame() throws(ProtocolError) -> Frame? {
        guard let header = try nextHeader(), let payload = takePayload() else { return nil }
        return Frame(fin: header.fin, reservedBits: header.reservedBits, opcode: header.opcode,
                     maskKey: header.maskKey, payload: payload)
    }
}

extension ByteBuffer {
    /// One empty buffer for every parser and outbound queue that holds nothing: an idle
    /// connection allocates no storage until it has bytes (a write copies on write).
    @usableFromInline static let sharedEmpty = ByteBuffer()
}
