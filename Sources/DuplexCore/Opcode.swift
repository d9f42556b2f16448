/// A WebSocket frame opcode (RFC 6455 §5.2).
///
/// Only the six defined opcodes can be represented; the parser rejects the reserved
/// values 0x3-0x7 and 0xB-0xF with a protocol error (close code 1002).
public enum Opcode: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// 0x0: a further frame of a fragmented message.
    case continuation = 0x0
    /// 0x1: the first frame of a text message (UTF-8).
    case text = 0x1
    /// 0x2: the first frame of a binary message.
    case binary = 0x2
    /// 0x8: a close frame, starting or answering the closing handshake.
    case close = 0x8
    /// 0x9: a ping, which the peer answers with a pong carrying the same payload.
    case ping = 0x9
    /// 0xA: a pong, the answer to a ping (or unsolicited, as a heartbeat).
    case pong = 0xA

    /// Control frames (close, ping, pong) have the high bit of the opcode set.
    @inlinable
    public var isControl: Bool { rawValue & 0x8 != 0 }

    /// The opcode's name: `text`, `binary`, `continuation`, `close`, `ping` or `pong`.
    public var description: String {
        switch self {
        case .continuation: "continuation"
        case .text: "text"
        case .binary: "binary"
        case .close: "close"
        case .ping: "ping"
        case .pong: "pong"
        }
    }
}

/// The three reserved bits of a frame header, as they sit in its first byte
/// (RSV1 = 0x40, RSV2 = 0x20, RSV3 = 0x10).
public struct ReservedBits: OptionSet, Sendable, Hashable {
    /// The bits as they sit in the header's first byte (only 0x70 can be set).
    public let rawValue: UInt8
    /// The reserved bits of a header's first byte; bits outside 0x70 are ignored.
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x70 }

    /// RSV1 (0x40): set by permessage-deflate on the first frame of a compressed message.
    public static let rsv1 = ReservedBits(rawValue: 0x40)
    /// RSV2 (0x20): no extension of this package uses it.
    public static let rsv2 = ReservedBits(rawValue: 0x20)
    /// RSV3 (0x10): no extension of this package uses it.
    public static let rsv3 = ReservedBits(rawValue: 0x10)
}
