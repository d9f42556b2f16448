import NIOCore

/// A negotiated per-message extension in use on one connection (RFC 6455 §9), such as
/// permessage-deflate (RFC 7692).
///
/// An extension owns one or more RSV bits. A received data message whose first frame carries
/// any of those bits is passed, frame by frame, through ``decode(frame:isFinal:maxOutput:)``;
/// an outgoing data message goes through ``encode(message:opcode:)`` before it is framed.
/// Control frames never go through an extension.
///
/// An instance belongs to one connection and is used from one thread at a time (the
/// connection's event loop), so it may keep mutable state such as a zlib stream.
public protocol WebSocketExtension: AnyObject {
    /// The registered extension name, e.g. `permessage-deflate`.
    var name: String { get }
    /// The RSV bits this extension sets on the first frame of the messages it transforms.
    var reservedBits: ReservedBits { get }

    /// Transforms one received frame of a message that this extension marked.
    /// - Parameters:
    ///   - frame: the frame's payload, unmasked.
    ///   - isFinal: whether this is the message's last frame.
    ///   - maxOutput: the most bytes this call may produce; produce more and the message is
    ///     refused. Implementations must stop as soon as they would exceed it (throw
    ///     ``ExtensionError/messageTooBig``) rather than allocate the rest.
    /// - Returns: the transformed bytes of this frame.
    func decode(frame: ByteBuffer, isFinal: Bool, maxOutput: Int) throws(ExtensionError) -> ByteBuffer

    /// Transforms an outgoing text or binary message.
    /// - Returns: the bytes to send and the RSV bits for the first frame, or nil to send the
    ///   message unchanged (e.g. below a size threshold).
    func encode(message: ByteBuffer, opcode: Opcode) throws(ExtensionError) -> (payload: ByteBuffer, reservedBits: ReservedBits)?

    /// Releases resources (zlib streams) when the connection ends. Called once.
    func shutdown()

    /// Names how this extension encodes a message when the encoding depends on that message
    /// only (not on earlier ones): two connections whose extensions have equal keys encode a
    /// message to the same bytes, so a server can encode it once for all of them (topic
    /// fan-out). nil when the encoding carries state from message to message. Default: nil.
    var sharedEncodingKey: AnyHashable? { get }
}

extension WebSocketExtension {
    /// Does nothing: an extension without resources to release needs no `shutdown`.
    public func shutdown() {}

    /// By default an extension's encoding may depend on earlier messages: no sharing.
    public var sharedEncodingKey: AnyHashable? { nil }
}

/// Why an extension could not transform a message.
public enum ExtensionError: Error, Sendable, Hashable {
    /// The output would exceed the message size limit (close code 1009).
    case messageTooBig
    /// The input is malformed for this extension (close code 1007 for invalid data by default).
    case invalidData(String)
    /// The extension failed for another reason (close code 1011).
    case internalError(String)

    var protocolError: ProtocolError {
        switch self {
        case .messageTooBig: ProtocolError(.extensionFailure(code: .messageTooBig, message: "message too big after decoding"))
        case .invalidData(let m): ProtocolError(.extensionFailure(code: .invalidPayloadData, message: m))
        case .internalError(let m): ProtocolError(.extensionFailure(code: .internalError, message: m))
        }
    }
}
