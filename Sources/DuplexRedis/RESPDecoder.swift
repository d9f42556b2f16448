import NIOCore

/// Decodes RESP2 values from a byte stream, with limits: a hostile or broken peer gets a
/// ``RESPDecodingError``, never unbounded memory.
struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = RESPValue

    /// The largest bulk string accepted, in bytes.
    let maxBulkLength: Int
    /// The most elements one array may have.
    let maxArrayCount: Int
    /// The deepest nesting of arrays (pub/sub messages are 1 deep).
    let maxDepth: Int
    /// The longest `+`, `-` or `:` line.
    let maxLineLength = 64 * 1024

    mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        var copy = buffer
        guard let value = try parse(&copy, depth: 0) else { return nil }
        buffer = copy
        return value
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    private func parse(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        var rest = buffer
        rest.moveReaderIndex(forwardBy: 1)
        guard let line = try readLine(&rest) else { return nil }
        let value: RESPValue
        switch type {
        case UInt8(ascii: "+"):
            value = .simpleString(line)
        case UInt8(ascii: "-"):
            value = .error(line)
        case UInt8(ascii: ":"):
            guard let number = respInteger(line) else { throw RESPDecodingError("bad integer '\(line.prefix(40))'") }
            value = .integer(number)
        case UInt8(ascii: "$"):
            guard let length = respInteger(line), length >= -1 else { throw RESPDecodingError("bad bulk length '\(line.prefix(40))'") }
            if length == -1 {
                value = .bulkString(nil)
            } else {
                guard length <= maxBulkLength else {
                    throw RESPDecodingError("bulk string of \(length) bytes is over the limit of \(maxBulkLength)")
                }
                guard rest.readableBytes >= length + 2 else { return nil }
                let bytes = rest.readSlice(length: length)!
                guard rest.readInteger(as: UInt16.self) == 0x0D0A else { throw RESPDecodingError("bulk string without CRLF") }
                value = .bulkString(bytes)
            }
        case UInt8(ascii: "*"):
            guard let count = respInteger(line), count >= -1 else { throw RESPDecodingError("bad array length '\(line.prefix(40))'") }
            if count == -1 {
                value = .array(nil)
            } else {
                guard count <= maxArrayCount else { throw RESPDecodingError("array of \(count) elements is over the limit of \(maxArrayCount)") }
                guard depth < maxDepth else { throw RESPDecodingError("arrays nested deeper than \(maxDepth)") }
                var elements: [RESPValue] = []
                elements.reserveCapacity(min(count, 16))
                for _ in 0..<count {
                    guard let element = try parse(&rest, depth: depth + 1) else { return nil }
                    elements.append(element)
                }
                value = .array(elements)
            }
        default:
            throw RESPDecodingError("unknown RESP type byte \(type)")
        }
        buffer = rest
        return value
    }

    /// A line up to CRLF, or nil if it has not all arrived.
    private func readLine(_ buffer: inout ByteBuffer) throws -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")) else {
            if view.count > maxLineLength { throw RESPDecodingError("line longer than \(maxLineLength) bytes") }
            return nil
        }
        guard cr + 1 < view.endIndex else { return nil }
        guard view[cr + 1] == UInt8(ascii: "\n") else { throw RESPDecodingError("CR without LF") }
        let length = cr - view.startIndex
        let line = buffer.readString(length: length)!
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}

/// The peer sent something that is not RESP2, or over a limit.
public struct RESPDecodingError: Error, Sendable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { "invalid RESP from the server: \(reason)" }
}

/// A RESP integer: an optional `-` and decimal digits only (`Int("+5")` would read `+5`, and
/// Redis never sends a sign other than `-`).
private func respInteger(_ line: String) -> Int? {
    let digits = line.utf8.first == UInt8(ascii: "-") ? line.utf8.dropFirst() : line.utf8[...]
    guard !digits.isEmpty, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
    return Int(line)
}
