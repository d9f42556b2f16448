import DuplexCore
import NIOCore

/// A ``BrokerMessage`` as bytes, for brokers whose channels are named by topic and carry binary
/// payloads (Redis): version (1 byte, 1), kind (1 byte: 1 text, 2 binary), the origin's node id
/// (16 bytes), then the payload.
public enum BrokerEnvelope {
    /// The bytes before the payload.
    public static let headerSize = 18
    private static let version: UInt8 = 1

    /// The envelope of `message` (its topic is not in it: the channel carries it).
    public static func encode(_ message: BrokerMessage, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: headerSize + message.payload.readableBytes)
        buffer.writeInteger(version)
        buffer.writeInteger(message.isText ? UInt8(1) : UInt8(2))
        buffer.writeBytes(message.origin.bytes)
        buffer.writeImmutableBuffer(message.payload)
        return buffer
    }

    /// The message in `envelope`, published to `topic`; nil if it is not one of ours (another
    /// version, a stranger publishing to the channel), or a text payload is not UTF-8.
    public static func decode(topic: String, _ envelope: ByteBuffer) -> BrokerMessage? {
        var buffer = envelope
        guard let version = buffer.readInteger(as: UInt8.self), version == Self.version,
              let kind = buffer.readInteger(as: UInt8.self), kind == 1 || kind == 2,
              let id = buffer.readBytes(length: 16), let origin = BrokerNodeID(bytes: id) else { return nil }
        if kind == 1 && !UTF8Validator.isValid(buffer.readableBytesView) { return nil }
        return BrokerMessage(topic: topic, origin: origin, isText: kind == 1, payload: buffer)
    }
}
