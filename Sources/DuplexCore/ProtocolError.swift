/// A violation of RFC 6455 (or of a configured limit) by the peer.
///
/// Every case names the close code that the connection sends when it fails because of it
/// (RFC 6455 §7.4.1): 1002 for framing violations, 1007 for invalid UTF-8, 1009 for
/// size limits, 1010/1011 for extension failures.
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which rule the peer broke, with what the check found.
    public enum Kind: Sendable, Hashable {
        /// Opcodes 0x3-0x7 and 0xB-0xF are reserved.
        case reservedOpcode(UInt8)
        /// An RSV bit is set that no negotiated extension owns, or on a frame where the extension does not allow it.
        case reservedBitsSet(ReservedBits)
        /// A control frame with a payload over 125 bytes.
        case controlFrameTooLong(Int)
        /// A control frame with FIN = 0.
        case fragmentedControlFrame
        /// A server received an unmasked frame.
        case unmaskedFrame
        /// A client received a masked frame.
        case maskedFrame
        /// A 64-bit payload length with its most significant bit set.
        case invalidPayloadLength
        /// A continuation frame with no message in progress.
        case unexpectedContinuation
        /// A new text or binary frame while a fragmented message is in progress.
        case expectedContinuation
        /// A frame's payload exceeds the frame size limit.
        case frameTooBig(size: Int, limit: Int)
        /// A message exceeds the message size limit.
        case messageTooBig(limit: Int)
        /// A text message (or a close reason) is not valid UTF-8.
        case invalidUTF8
        /// A close frame with a 1-byte payload.
        case invalidClosePayload
        /// A close frame with a code that may not be sent (1004-1006, 1015, 1016-2999, < 1000, >= 5000).
        case invalidCloseCode(UInt16)
        /// A negotiated extension could not process a frame.
        case extensionFailure(code: CloseCode, message: String)
    }

    /// Which rule the peer broke.
    public var kind: Kind

    /// An error of this kind.
    public init(_ kind: Kind) { self.kind = kind }

    /// The close code sent to the peer when the connection fails with this error.
    public var closeCode: CloseCode {
        switch kind {
        case .invalidUTF8: .invalidPayloadData
        case .frameTooBig, .messageTooBig: .messageTooBig
        case .extensionFailure(let code, _): code
        default: .protocolError
        }
    }

    /// A one-line explanation for logs, e.g. `control frame payload of 126 bytes (at most 125)`.
    public var description: String {
        switch kind {
        case .reservedOpcode(let op): "reserved opcode 0x\(String(op, radix: 16))"
        case .reservedBitsSet(let bits): "reserved bits set without a negotiated extension (0x\(String(bits.rawValue, radix: 16)))"
        case .controlFrameTooLong(let n): "control frame payload of \(n) bytes (at most 125)"
        case .fragmentedControlFrame: "fragmented control frame"
        case .unmaskedFrame: "unmasked frame from a client"
        case .maskedFrame: "masked frame from a server"
        case .invalidPayloadLength: "64-bit payload length with the most significant bit set"
        case .unexpectedContinuation: "continuation frame without a message in progress"
        case .expectedContinuation: "new data frame while a fragmented message is in progress"
        case .frameTooBig(let size, let limit): "frame of \(size) bytes exceeds the limit of \(limit)"
        case .messageTooBig(let limit): "message exceeds the limit of \(limit) bytes"
        case .invalidUTF8: "invalid UTF-8 in text"
        case .invalidClosePayload: "close frame payload of 1 byte"
        case .invalidCloseCode(let code): "invalid close code \(code)"
        case .extensionFailure(_, let message): message
        }
    }
}
