import CompressNIO
import NIOCore

/// The permessage-deflate extension (RFC 7692) on one connection: compresses outgoing
/// messages and inflates incoming ones, with RSV1 marking compressed messages.
///
/// - Outgoing: each message of at least ``PerMessageDeflateConfiguration/minimumMessageSize``
///   bytes is deflated with `Z_SYNC_FLUSH` and the trailing `00 00 ff ff` removed (§7.2.1).
/// - Incoming: frames are inflated as they arrive with the tail appended at the end of the
///   message (§7.2.2). The output is bounded while inflating: a message that would inflate past
///   the size limit fails with 1009 after at most the limit plus one chunk is allocated.
/// - Context: kept across messages unless no-context-takeover was agreed for that direction;
///   then the zlib stream is freed after each message, so an idle connection holds none.
public final class PerMessageDeflate: WebSocketExtension {
    /// The registered extension name, `permessage-deflate`, as it appears in `Sec-WebSocket-Extensions`.
    public static let name = "permessage-deflate"
    /// `permessage-deflate`, the same as the type's static `name`.
    public var name: String { Self.name }
    /// RSV1: set on the first frame of every compressed message.
    public var reservedBits: ReservedBits { .rsv1 }

    let configuration: PerMessageDeflateConfiguration
    /// Window bits of this side's compressor; 8 means "send uncompressed" (zlib cannot do 8).
    public let localWindowBits: Int
    /// Whether this side resets (and frees) its compressor after every message, as negotiated.
    public let localNoContextTakeover: Bool
    /// Window bits (8...15) of the peer's compressor, as negotiated: the window this side inflates with.
    public let peerWindowBits: Int
    /// Whether the peer resets its context after every message, so that this side frees its
    /// decompressor between messages.
    public let peerNoContextTakeover: Bool

    private var compressor: ZlibCompressor?
    private var decompressor: ZlibDecompressor?
    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    /// The extension for one connection, with the parameters the negotiation agreed on; zlib streams
    /// are made on first use. The negotiators (``ServerNegotiator``, ``ClientNegotiator``) make it.
    public init(configuration: PerMessageDeflateConfiguration, localWindowBits: Int, localNoContextTakeover: Bool,
                peerWindowBits: Int, peerNoContextTakeover: Bool) {
        self.configuration = configuration
        self.localWindowBits = localWindowBits
        self.localNoContextTakeover = localNoContextTakeover
        self.peerWindowBits = peerWindowBits
        self.peerNoContextTakeover = peerNoContextTakeover
    }

    /// Whether zlib streams are allocated now (for tests and memory checks).
    public var holdsCompressor: Bool { compressor != nil }
    /// Whether this side's zlib inflate stream is allocated now.
    public var holdsDecompressor: Bool { decompressor != nil }

    // MARK: Decoding

    /// Inflates one frame of a compressed message, appending the `00 00 ff ff` tail after the last.
    /// - Throws: ``ExtensionError/messageTooBig`` when the output would pass `maxOutput` (checked while
    ///   inflating), ``ExtensionError/invalidData(_:)`` for data zlib cannot inflate,
    ///   ``ExtensionError/internalError(_:)`` when zlib cannot be set up.
    public func decode(frame: ByteBuffer, isFinal: Bool, maxOutput: Int) throws(ExtensionError) -> ByteBuffer {
        let inflater: ZlibDecompressor
        if let decompressor {
            inflater = decompressor
        } else {
            do {
                // A window at least as large as the peer's decodes its stream; zlib's minimum is 9.
                inflater = try ZlibDecompressor(algorithm: .deflate, windowSize: Int32(max(peerWindowBits, 9)))
            } catch {
                throw ExtensionError.internalError("cannot create a zlib stream: \(error)")
            }
            decompressor = inflater
        }
        // The bound below is maxOutput + 1: keep it representable when there is no limit (Int.max).
        let maxOutput = min(maxOutput, Int.max - 1)
        var output = ByteBuffer()
        output.reserveCapacity(min(maxOutput + 1, max(frame.readableBytes * 4, 256)))
        var input = frame
        try inflate(&input, with: inflater, into: &output, maxOutput: maxOutput)
        if isFinal {
            var tail = ByteBuffer(bytes: Self.tail)
            try inflate(&tail, with: inflater, into: &output, maxOutput: maxOutput)
            if tail.readableBytes > 0 || peerNoContextTakeover {
                // The tail was not consumed: the peer ended the deflate stream (BFINAL), so the
                // next message starts a new one. Or no context is kept between messages.
                decompressor = nil
            }
        }
        return output
    }

    private func inflate(_ input: inout ByteBuffer, with inflater: ZlibDecompressor, into output: inout ByteBuffer,
                         maxOutput: Int) throws(ExtensionError) {
        while input.readableBytes > 0 {
            if output.writableBytes == 0 {
                guard output.readableBytes <= maxOutput else { throw ExtensionError.messageTooBig }
                // Grow, but never past the limit plus one byte: a bomb stops at the limit.
                let room = min(max(output.capacity, 4096), maxOutput + 1 - output.readableBytes)
                guard room > 0 else { throw ExtensionError.messageTooBig }
                output.reserveCapacity(minimumWritableBytes: room)
            }
            let before = (input.readableBytes, output.readableBytes)
            do {
                try inflater.inflate(from: &input, to: &output)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // Output full: grow and go on. ByteBuffer rounds a reservation up (to a power of
                // two), so zlib may have written past the limit plus one: that is too big already,
                // also when this was the input's last byte (found by FuzzInflate).
                if output.readableBytes > maxOutput { throw ExtensionError.messageTooBig }
                continue
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                return  // all input consumed, more is needed
            } catch let error as CompressNIOError where error == .corruptData {
                throw ExtensionError.invalidData("invalid deflate data")
            } catch {
                throw ExtensionError.internalError("inflate failed: \(error)")
            }
            if output.readableBytes > maxOutput { throw ExtensionError.messageTooBig }
            if (input.readableBytes, output.readableBytes) == before { return }  // end of stream: no progress
        }
    }

    // MARK: Encoding

    /// Deflates an outgoing message, or returns nil to send it as it is: below
    /// ``PerMessageDeflateConfiguration/minimumMessageSize``, with an 8-bit window, or (without context
    /// takeover) when it does not shrink.
    /// - Throws: ``ExtensionError/internalError(_:)`` when zlib fails.
    public func encode(message: ByteBuffer, opcode: Opcode) throws(ExtensionError) -> (payload: ByteBuffer, reservedBits: ReservedBits)? {
        guard localWindowBits >= 9, message.readableBytes > 0,
              message.readableBytes >= configuration.minimumMessageSize else { return nil }
        let deflater: ZlibCompressor
        if let compressor {
            deflater = compressor
        } else {
            do {
                deflater = try ZlibCompressor(
                    algorithm: .deflate,
                    configuration: ZlibConfiguration(windowSize: Int32(localWindowBits), compressionLevel: configuration.compressionLevel,
                                                     memoryLevel: configuration.memoryLevel)
                )
            } catch {
                throw ExtensionError.internalError("cannot create a zlib stream: \(error)")
            }
            compressor = deflater
        }
        var input = message
        var output = ByteBuffer()
        output.reserveCapacity(deflater.maxSize(from: input))
        do {
            try deflater.deflate(from: &input, to: &output, flush: .sync)
        } catch {
            compressor = nil  // the stream's state is unknown now
            throw ExtensionError.internalError("deflate failed: \(error)")
        }
        if output.readableBytes >= 4, output.getBytes(at: output.writerIndex - 4, length: 4) == Self.tail {
            output.moveWriterIndex(to: output.writerIndex - 4)
        }
        if localNoContextTakeover {
            compressor = nil
            // Without shared context a message that did not shrink can go out as it is.
            if output.readableBytes >= message.readableBytes { return nil }
        }
        return (output, .rsv1)
    }

    /// Frees both zlib streams; the connection calls it once, when it ends.
    public func shutdown() {
        compressor = nil
        decompressor = nil
    }

    /// Without context takeover on this side each message is compressed by a fresh stream, so
    /// the bytes depend on the message and these settings only: connections with the same key
    /// can share one compressed frame.
    public var sharedEncodingKey: AnyHashable? {
        guard localNoContextTakeover else { return nil }
        return SharingKey(windowBits: localWindowBits, compressionLevel: configuration.compressionLevel,
                          memoryLevel: configuration.memoryLevel, minimumMessageSize: configuration.minimumMessageSize)
    }

    private struct SharingKey: Hashable {
        var windowBits: Int
        var compressionLevel: Int32
        var memoryLevel: Int32
        var minimumMessageSize: Int
    }
}
