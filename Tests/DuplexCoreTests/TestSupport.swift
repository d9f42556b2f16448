import NIOCore
import Testing
@testable import DuplexCore

// Helpers shared by the DuplexCore tests: byte conversions, a seeded generator, frame
// builders and event collection.

extension ByteBuffer {
    /// The readable bytes as an array.
    var bytes: [UInt8] { Array(readableBytesView) }
}

/// SplitMix64: a small deterministic generator, so random tests are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = next()
            for _ in 0..<8 where i < count {
                out[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return out
    }

    /// A valid UTF-8 string of exactly `byteCount` bytes, mixing 1- to 4-byte scalars.
    /// Long strings repeat random 8 KiB blocks of random scalars (fast enough for a debug build).
    mutating func text(byteCount: Int) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(byteCount)
        if byteCount > 16384 {
            let block = Array(text(byteCount: 8192).utf8)
            while byteCount - bytes.count > 8192 { bytes += block }
        }
        while bytes.count < byteCount {
            let room = byteCount - bytes.count
            let width = Int.random(in: 1...min(4, room), using: &self)
            let value: UInt32 = switch width {
            case 1: UInt32.random(in: 0x20...0x7E, using: &self)
            case 2: UInt32.random(in: 0x80...0x7FF, using: &self)
            case 3: Bool.random(using: &self) ? UInt32.random(in: 0x800...0xD7FF, using: &self)
                                               : UInt32.random(in: 0xE000...0xFFFF, using: &self)
            default: UInt32.random(in: 0x10000...0x10FFFF, using: &self)
            }
            // UTF-8 encoding by hand (checked below by the standard library).
            switch width {
            case 1: bytes.append(UInt8(value))
            case 2: bytes += [0xC0 | UInt8(value >> 6), 0x80 | UInt8(value & 0x3F)]
            case 3: bytes += [0xE0 | UInt8(value >> 12), 0x80 | UInt8((value >> 6) & 0x3F), 0x80 | UInt8(value & 0x3F)]
            default: bytes += [0xF0 | UInt8(value >> 18), 0x80 | UInt8((value >> 12) & 0x3F),
                               0x80 | UInt8((value >> 6) & 0x3F), 0x80 | UInt8(value & 0x3F)]
            }
        }
        let string = String(validating: bytes, as: UTF8.self)!
        precondition(string.utf8.count == byteCount)
        return string
    }

    /// Cuts `count` into random positive piece sizes.
    mutating func splits(of count: Int, maxPiece: Int) -> [Int] {
        var pieces: [Int] = []
        var left = count
        while left > 0 {
            let n = Int.random(in: 1...min(maxPiece, left), using: &self)
            pieces.append(n)
            left -= n
        }
        return pieces
    }
}

/// The key of RFC 6455 §5.7's masked examples.
let rfcKey = MaskKey(0x37, 0xFA, 0x21, 0x3D)

enum Wire {
    /// One encoded frame.
    static func frame(
        _ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = [], key: MaskKey? = nil
    ) -> [UInt8] {
        var out = ByteBuffer()
        FrameWriter.write(fin: fin, reservedBits: rsv, opcode: opcode, maskKey: key,
                          payload: ByteBuffer(bytes: payload), to: &out)
        return out.bytes
    }

    static func frame(_ opcode: Opcode, _ text: String, fin: Bool = true, rsv: ReservedBits = [], key: MaskKey? = nil) -> [UInt8] {
        frame(opcode, Array(text.utf8), fin: fin, rsv: rsv, key: key)
    }

    /// A frame as a peer sends it to a connection of `role`: masked (with `key`) when that is a server.
    static func frame(
        to role: Role, _ opcode: Opcode, _ payload: [UInt8], fin: Bool = true, rsv: ReservedBits = [],
        key: MaskKey = rfcKey
    ) -> [UInt8] {
        frame(opcode, payload, fin: fin, rsv: rsv, key: role == .server ? key : nil)
    }

    static func frame(to role: Role, _ opcode: Opcode, _ text: String, fin: Bool = true, rsv: ReservedBits = [],
                      key: MaskKey = rfcKey) -> [UInt8] {
        frame(to: role, opcode, Array(text.utf8), fin: fin, rsv: rsv, key: key)
    }

    /// A close frame to a connection of `role`.
    static func close(to role: Role, code: UInt16?, reason: [UInt8] = []) -> [UInt8] {
        var payload: [UInt8] = []
        if let code { payload = [UInt8(code >> 8), UInt8(code & 0xFF)] + reason }
        return frame(to: role, .close, payload)
    }

    /// A raw header: first byte, then the length field as given, then a mask key when the receiver is a server.
    static func header(to role: Role, first: UInt8, lengthByte: UInt8, extended: [UInt8] = []) -> [UInt8] {
        let masked = role == .server
        return [first, (masked ? 0x80 : 0) | lengthByte] + extended + (masked ? rfcKey.bytes : [])
    }
}

extension Role {
    var peer: Role { self == .server ? .client : .server }
}

/// Every event the connection can give now.
func drain(_ connection: inout Connection) -> [ConnectionEvent] {
    var events: [ConnectionEvent] = []
    while let event = connection.nextEvent() {
        events.append(event)
    }
    return events
}

/// Feeds `bytes` in one piece and collects the events.
func feed(_ connection: inout Connection, _ bytes: [UInt8]) -> [ConnectionEvent] {
    connection.receive(ByteBuffer(bytes: bytes))
    return drain(&connection)
}

/// Feeds `bytes` in pieces of the given sizes (the rest in one piece), draining events after each.
func feed(_ connection: inout Connection, _ bytes: [UInt8], pieces: [Int]) -> [ConnectionEvent] {
    var events: [ConnectionEvent] = []
    var start = 0
    for size in pieces where start < bytes.count {
        let end = min(bytes.count, start + size)
        events += feed(&connection, Array(bytes[start..<end]))
        start = end
    }
    if start < bytes.count { events += feed(&connection, Array(bytes[start...])) }
    return events
}

/// Decodes the frames a connection of role `sender` wrote, with a parser of the peer's role
/// (so client frames must be masked and server frames must not be).
func decodeFrames(sentBy sender: Role, _ bytes: ByteBuffer?, sourceLocation: SourceLocation = #_sourceLocation) -> [Frame] {
    guard let bytes else { return [] }
    var parser = FrameParser(role: sender.peer, allowedReservedBits: [.rsv1, .rsv2, .rsv3], maxFrameSize: .max)
    parser.append(bytes)
    var frames: [Frame] = []
    do {
        while let frame = try parser.nextFrame() { frames.append(frame) }
    } catch {
        Issue.record("outbound bytes do not parse: \(error)", sourceLocation: sourceLocation)
    }
    #expect(parser.bufferedBytes == 0, "trailing bytes in the outbound buffer", sourceLocation: sourceLocation)
    return frames
}

/// The code of a close frame's payload, nil when empty.
func closeCode(of frame: Frame) -> UInt16? {
    frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt16.self)
}

/// The failure in a list of events, if the last one is a failure.
func failure(in events: [ConnectionEvent]) -> ProtocolError? {
    if case .failed(let error)? = events.last { return error }
    return nil
}

/// The connection's queued bytes, which must not be empty.
func outbound(of connection: inout Connection, sourceLocation: SourceLocation = #_sourceLocation) throws -> ByteBuffer {
    let bytes = connection.takeOutbound()
    return try #require(bytes, "nothing queued", sourceLocation: sourceLocation)
}

// MARK: - HTTP fields by name

import HTTPTypes

extension HTTPFields {
    /// Appends a field by its name as text (the tests' header blocks).
    mutating func add(name: String, value: String) {
        append(HTTPField(name: HTTPField.Name(name)!, value: value))
    }

    /// Every value of the fields named `name`, in order.
    func values(_ name: String) -> [String] { self[values: HTTPField.Name(name)!] }

    /// Removes every field named `name`.
    mutating func remove(_ name: String) { self[HTTPField.Name(name)!] = nil }
}

extension ClientHandshake {
    /// Checks a response given as status and fields.
    func validate(status: HTTPResponse.Status, headers: HTTPFields) throws(HandshakeError) -> Result {
        try validate(HTTPResponse(status: status, headerFields: headers))
    }
}
