import NIOCore

/// One WebSocket frame (RFC 6455 §5.2).
///
/// `payload` holds the application data, already unmasked when the frame came from the
/// parser. `maskKey` records whether (and with which key) the frame was masked on the wire;
/// when encoding, a non-nil key masks the payload.
public struct Frame: Sendable, Equatable {
    /// Whether this is the last frame of its message (FIN bit). Control frames always have it set.
    public var fin: Bool
    /// The RSV1-3 bits; nonzero only for an extension that negotiated them (RSV1: permessage-deflate).
    public var reservedBits: ReservedBits
    /// What the frame carries: a data frame's opcode, a continuation, or a control frame's.
    public var opcode: Opcode
    /// The masking key: set on every client-to-server frame, nil on server-to-client frames.
    public var maskKey: MaskKey?
    /// The application data, unmasked.
    public var payload: ByteBuffer

    /// A frame; by default the last of its message, with no reserved bits and unmasked.
    public init(
        fin: Bool = true,
        reservedBits: ReservedBits = [],
        opcode: Opcode,
        maskKey: MaskKey? = nil,
        payload: ByteBuffer
    ) {
        self.fin = fin
        self.reservedBits = reservedBits
        self.opcode = opcode
        self.maskKey = maskKey
        self.payload = payload
    }
}

/// The four-byte masking key of a client-to-server frame (RFC 6455 §5.3).
public struct MaskKey: Sendable, Hashable, CustomStringConvertible {
    /// The key's bytes in wire order, packed so that byte 0 is the lowest byte.
    public let packed: UInt32

    /// A key from its four bytes in wire order.
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) {
        packed = UInt32(b0) | UInt32(b1) << 8 | UInt32(b2) << 16 | UInt32(b3) << 24
    }

    /// A key from its bytes packed as ``packed`` holds them (byte 0 lowest).
    public init(packed: UInt32) { self.packed = packed }

    /// The key's bytes in wire order.
    public var bytes: [UInt8] {
        [UInt8(truncatingIfNeeded: packed), UInt8(truncatingIfNeeded: packed >> 8),
         UInt8(truncatingIfNeeded: packed >> 16), UInt8(truncatingIfNeeded: packed >> 24)]
    }

    /// A fresh key from the system's cryptographically secure generator
    /// (`SystemRandomNumberGenerator`: getrandom(2) on Linux, arc4random on Apple platforms),
    /// as RFC 6455 §5.3 requires for every frame a client sends.
    public static func random() -> MaskKey {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// A key drawn from `generator`; for tests and benchmarks that need repeatable keys (a client's
    /// frames must use ``random()``).
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> MaskKey {
        MaskKey(packed: UInt32.random(in: .min ... .max, using: &generator))
    }

    /// The four bytes in hexadecimal, wire order: `37fa213d`.
    public var description: String {
        bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
