/// A WebSocket frame opcode (RFC 6455 §5.2).
///
/// Only the six defined opcodes can be represented; the parser rejects the reserved
/// values 0x3-0x7 and 0xB-0xF with a protocol error (close code 1002).
public enum Opcode: UInt8, Sendable, Hashable, CustomStringConvertible {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// Control frames (close, ping, pong) have the high bit of the opcode set.
    @inlinable
    public var isControl: Bool { rawValue & 0x8 != 0 }

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
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue & 0x70 }

    public static let rsv1 = ReservedBits(rawValue: 0x40)
    public static let rsv2 = ReservedBits(rawValue: 0x20)
    public static let rsv3 = ReservedBits(rawValue: 0x10)
}
