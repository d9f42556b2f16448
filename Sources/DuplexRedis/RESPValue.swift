import NIOCore

/// A RESP2 value (the Redis serialization protocol, version 2): what a Redis server answers.
public enum RESPValue: Sendable, Equatable {
    /// `+OK`
    case simpleString(String)
    /// `-ERR ...`: the server refused the command.
    case error(String)
    /// `:42`
    case integer(Int)
    /// `$5\r\nhello`, or nil for `$-1`.
    case bulkString(ByteBuffer?)
    /// `*2\r\n...`, or nil for `*-1`.
    case array([RESPValue]?)

    /// The value as text, for simple and bulk strings.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let bytes?): String(buffer: bytes)
        default: nil
        }
    }
}

/// A Redis command: its name and arguments, each sent as a bulk string.
public struct RedisCommand: Sendable {
    /// The name and arguments.
    public var parts: [ByteBuffer]

    /// A command from text parts (`["PUBLISH", "channel"]`) and binary ones after them.
    public init(_ words: [String], binary: [ByteBuffer] = []) {
        parts = words.map { ByteBuffer(string: $0) } + binary
    }

    /// Writes the command as a RESP array of bulk strings.
    func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeString(String(parts.count))
        buffer.writeStaticString("\r\n")
        for part in parts {
            buffer.writeInteger(UInt8(ascii: "$"))
            buffer.writeString(String(part.readableBytes))
            buffer.writeStaticString("\r\n")
            buffer.writeImmutableBuffer(part)
            buffer.writeStaticString("\r\n")
        }
    }
}
