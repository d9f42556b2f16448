import NIOCore
import Testing
@testable import DuplexCore

/// The Connection's receive side: any split of the input gives the same events, control
/// frames between fragments, automatic pongs.
@Suite struct ConnectionTests {
    /// A stream of every kind of frame a peer sends to `role`, masked with varying keys for a
    /// server, and the events it must produce.
    /// `large` adds frames with 64-bit lengths (too slow to feed byte by byte in a debug build).
    static func mixedStream(to role: Role, seed: UInt64, large: Bool) -> (bytes: [UInt8], events: [ConnectionEvent]) {
        var rng = SeededGenerator(seed: seed)
        let (textSize, binarySize, singleSize) = large ? (3000, 70_000, 65536) : (900, 1000, 300)
        var bytes: [UInt8] = []
        func add(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true) {
            bytes += Wire.frame(to: role, opcode, payload, fin: fin, key: MaskKey.random(using: &rng))
        }
        let text = Array(rng.text(byteCount: textSize).utf8)
        let third = textSize / 3 + 1
        let binary = rng.bytes(binarySize)
        let ping = rng.bytes(125)
        add(.text, Array("Hello".utf8))
        add(.text, [])
        add(.binary, [])
        add(.ping, ping)
        add(.text, Array(text[..<third]), fin: false)  // splits code points between fragments
        add(.pong, Array("pong".utf8))
        add(.continuation, Array(text[third..<(2 * third)]), fin: false)
        add(.ping, [])
        add(.continuation, [], fin: false)
        add(.continuation, Array(text[(2 * third)...]))
        add(.binary, Array(binary[..<126]), fin: false)
        add(.continuation, Array(binary[126...]))
        add(.binary, Array(binary[..<singleSize]))
        add(.close, [0x03, 0xE9] + Array("done".utf8))
        add(.text, Array("after close: ignored".utf8))
        let events: [ConnectionEvent] = [
            .text(ByteBuffer(string: "Hello")),
            .text(ByteBuffer()),
            .binary(ByteBuffer()),
            .ping(ByteBuffer(bytes: ping)),
            .pong(ByteBuffer(string: "pong")),
            .ping(ByteBuffer()),
            .text(ByteBuffer(bytes: text)),
            .binary(ByteBuffer(bytes: binary)),
            .binary(ByteBuffer(bytes: binary[..<singleSize])),
            .close(CloseFrame(code: .goingAway, reason: "done")),
        ]
        return (bytes, events)
    }

    /// What a connection sent, with masks dropped (a client picks fresh random keys).
    static func sent(by role: Role, _ connection: inout Connection) -> [Frame] {
        decodeFrames(sentBy: role, connection.takeOutbound()).map {
            var frame = $0
            #expect((frame.maskKey != nil) == (role == .client))
            frame.maskKey = nil
            return frame
        }
    }

    @Test(arguments: [Role.client, .server], [false, true])
    func sameEventsForAnySplit(role: Role, large: Bool) {
        let (bytes, expected) = Self.mixedStream(to: role, seed: role == .server ? 1 : 2, large: large)

        var whole = Connection(role: role)
        #expect(feed(&whole, bytes) == expected)
        let replies = Self.sent(by: role, &whole)
        // Two pongs carrying the pings' payloads, then the close echo.
        #expect(replies.map(\.opcode) == [.pong, .pong, .close])
        #expect(replies.first?.payload == expected[3].pingPayload)
        #expect(replies.last.flatMap(closeCode(of:)) == 1001)
        #expect(whole.state == .closed)
        #expect(whole.isCleanlyClosed)

        if !large {
            var single = Connection(role: role)
            #expect(feed(&single, bytes, pieces: Array(repeating: 1, count: bytes.count)) == expected)
            #expect(Self.sent(by: role, &single) == replies)
        }

        var rng = SeededGenerator(seed: 77)
        for maxPiece in large ? [300, 4096, 100_000] : [2, 7, 130, 4096] {
            var split = Connection(role: role)
            #expect(feed(&split, bytes, pieces: rng.splits(of: bytes.count, maxPiece: maxPiece)) == expected,
                    "max piece \(maxPiece)")
            #expect(Self.sent(by: role, &split) == replies)
        }
    }

    /// Partial input produces no event until a frame completes, and nextEvent can be called any time.
    @Test func noEventBeforeAFrameCompletes() {
        var connection = Connection(role: .server)
        #expect(connection.nextEvent() == nil)
        let frame = Wire.frame(.binary, [UInt8](repeating: 9, count: 300), key: rfcKey)
        #expect(feed(&connection, Array(frame[..<299])) == [])
        #expect(connection.nextEvent() == nil)
        #expect(feed(&connection, Array(frame[299...])) == [.binary(ByteBuffer(repeating: 9, count: 300))])
        #expect(connection.nextEvent() == nil)
    }

    @Test(arguments: [Role.client, .server])
    func controlFramesBetweenFragments(role: Role) {
        var connection = Connection(role: role)
        let stream = Wire.frame(to: role, .text, "Hel", fin: false)
            + Wire.frame(to: role, .ping, "p1")
            + Wire.frame(to: role, .continuation, "l", fin: false)
            + Wire.frame(to: role, .pong, "q")
            + Wire.frame(to: role, .ping, "p2")
            + Wire.frame(to: role, .continuation, "o")
        #expect(feed(&connection, stream) == [
            .ping(ByteBuffer(string: "p1")), .pong(ByteBuffer(string: "q")), .ping(ByteBuffer(string: "p2")),
            .text(ByteBuffer(string: "Hello")),
        ])
        let replies = Self.sent(by: role, &connection)
        #expect(replies == [Frame(opcode: .pong, payload: ByteBuffer(string: "p1")),
                            Frame(opcode: .pong, payload: ByteBuffer(string: "p2"))])
        // A close between fragments ends the connection; the partial message is dropped.
        var closing = Connection(role: role)
        #expect(feed(&closing, Wire.frame(to: role, .binary, "ab", fin: false) + Wire.close(to: role, code: 1000))
                == [.close(CloseFrame(code: .normalClosure))])
    }

    @Test func autoPongCarriesThePingPayload() {
        // Server: the pong is the exact unmasked frame.
        var server = Connection(role: .server)
        #expect(feed(&server, Wire.frame(.ping, "Hello", key: rfcKey)) == [.ping(ByteBuffer(string: "Hello"))])
        #expect(server.takeOutbound()?.bytes == [0x8A, 0x05] + Array("Hello".utf8))
        // Empty and 125-byte pings.
        #expect(feed(&server, Wire.frame(.ping, [], key: rfcKey)) == [.ping(ByteBuffer())])
        #expect(server.takeOutbound()?.bytes == [0x8A, 0x00])
        let long = [UInt8](repeating: 0xAB, count: 125)
        _ = feed(&server, Wire.frame(.ping, long, key: rfcKey))
        #expect(server.takeOutbound()?.bytes == [0x8A, 125] + long)
        // Client: masked pong with the same payload.
        var client = Connection(role: .client)
        #expect(feed(&client, Wire.frame(.ping, "Hello")) == [.ping(ByteBuffer(string: "Hello"))])
        #expect(Self.sent(by: .client, &client) == [Frame(opcode: .pong, payload: ByteBuffer(string: "Hello"))])
        // A pong is not answered.
        #expect(feed(&client, Wire.frame(.pong, "x")) == [.pong(ByteBuffer(string: "x"))])
        #expect(client.takeOutbound() == nil)
    }

    @Test(arguments: [Role.client, .server])
    func autoPongCanBeTurnedOff(role: Role) throws {
        var connection = Connection(role: role, configuration: .init(autoPong: false))
        #expect(feed(&connection, Wire.frame(to: role, .ping, "Hello")) == [.ping(ByteBuffer(string: "Hello"))])
        #expect(connection.takeOutbound() == nil)
        try connection.pong(ByteBuffer(string: "Hello"))
        #expect(Self.sent(by: role, &connection) == [Frame(opcode: .pong, payload: ByteBuffer(string: "Hello"))])
        #expect(Connection.Configuration().autoPong)
        #expect(Connection.Configuration().limits == .default)
    }

    @Test(arguments: [Role.client, .server])
    func controlPayloadLimitsOnSend(role: Role) throws {
        var connection = Connection(role: role)
        try connection.ping(ByteBuffer(repeating: 1, count: 125))
        try connection.pong(ByteBuffer(repeating: 2, count: 125))
        #expect(throws: SendError.controlPayloadTooLong(126)) { try connection.ping(ByteBuffer(repeating: 1, count: 126)) }
        #expect(throws: SendError.controlPayloadTooLong(200)) { try connection.pong(ByteBuffer(repeating: 1, count: 200)) }
        #expect(throws: SendError.invalidFragmentSize(0)) { try connection.send(text: "abc", fragmentSize: 0) }
        #expect(throws: SendError.invalidFragmentSize(-1)) { try connection.send(binary: ByteBuffer(), fragmentSize: -1) }
        let sent = Self.sent(by: role, &connection)
        #expect(sent == [Frame(opcode: .ping, payload: ByteBuffer(repeating: 1, count: 125)),
                         Frame(opcode: .pong, payload: ByteBuffer(repeating: 2, count: 125))])
    }

    @Test func fragmentationOnSend() throws {
        var server = Connection(role: .server)
        try server.send(binary: ByteBuffer(bytes: Array(0..<10)), fragmentSize: 4)
        #expect(Self.sent(by: .server, &server) == [
            Frame(fin: false, opcode: .binary, payload: ByteBuffer(bytes: [0, 1, 2, 3])),
            Frame(fin: false, opcode: .continuation, payload: ByteBuffer(bytes: [4, 5, 6, 7])),
            Frame(fin: true, opcode: .continuation, payload: ByteBuffer(bytes: [8, 9])),
        ])
        // Exactly the fragment size, or an empty message: one frame.
        try server.send(text: "abcd", fragmentSize: 4)
        try server.send(text: "", fragmentSize: 4)
        #expect(Self.sent(by: .server, &server) == [Frame(opcode: .text, payload: ByteBuffer(string: "abcd")),
                                                    Frame(opcode: .text, payload: ByteBuffer())])
        // Text fragments may split a code point; each byte its own frame.
        try server.send(text: "€", fragmentSize: 1)
        #expect(Self.sent(by: .server, &server).map(\.payload.bytes) == [[0xE2], [0x82], [0xAC]])
    }

    @Test func manyFramesInOneReadAndOutboundCoalesced() throws {
        var server = Connection(role: .server)
        var input: [UInt8] = []
        for i in 0..<50 { input += Wire.frame(to: .server, .ping, "\(i)", key: MaskKey(packed: UInt32(i) &* 0x9E37_79B9)) }
        let events = feed(&server, input)
        #expect(events == (0..<50).map { .ping(ByteBuffer(string: "\($0)")) })
        let pongs = Self.sent(by: .server, &server)
        #expect(pongs == (0..<50).map { Frame(opcode: .pong, payload: ByteBuffer(string: "\($0)")) })
    }

    @Test func inputBufferIsNotModified() {
        let bytes = Wire.frame(.text, "Hello", key: rfcKey)
        let buffer = ByteBuffer(bytes: bytes)
        var server = Connection(role: .server)
        server.receive(buffer)
        #expect(drain(&server) == [.text(ByteBuffer(string: "Hello"))])
        #expect(buffer.bytes == bytes)
    }

    /// Input buffers whose readable bytes do not start at index 0 (a moved reader index, a slice of
    /// a larger buffer) parse the same, and the larger buffer is left as it was.
    @Test func buffersWithAnOffset() {
        let frames = Wire.frame(.text, "first", key: rfcKey) + Wire.frame(.binary, [UInt8](repeating: 3, count: 300), key: MaskKey(1, 2, 3, 4))
        let expected: [ConnectionEvent] = [.text(ByteBuffer(string: "first")), .binary(ByteBuffer(repeating: 3, count: 300))]

        var moved = ByteBuffer(bytes: [0xEE, 0xEE, 0xEE] + frames)
        moved.moveReaderIndex(forwardBy: 3)
        var a = Connection(role: .server)
        a.receive(moved)
        #expect(drain(&a) == expected)

        let large = ByteBuffer(bytes: [0xDD] + frames + [0xDD])
        let original = large.bytes
        var b = Connection(role: .server)
        b.receive(large.getSlice(at: 1, length: 20)!)
        b.receive(large.getSlice(at: 21, length: frames.count - 20)!)
        #expect(drain(&b) == expected)
        #expect(large.bytes == original)
    }

    /// Payload slices handed out stay intact while later input is unmasked in the same storage.
    @Test func deliveredPayloadsAreStable() {
        var server = Connection(role: .server)
        let first = Wire.frame(.binary, [UInt8](repeating: 0x11, count: 40), key: rfcKey)
        let second = Wire.frame(.binary, [UInt8](repeating: 0x22, count: 40), key: MaskKey(9, 9, 9, 9))
        var events = feed(&server, first + Array(second[..<10]))
        #expect(events == [.binary(ByteBuffer(repeating: 0x11, count: 40))])
        events += feed(&server, Array(second[10...]))
        #expect(events == [.binary(ByteBuffer(repeating: 0x11, count: 40)), .binary(ByteBuffer(repeating: 0x22, count: 40))])
    }
}

extension ConnectionEvent {
    var pingPayload: ByteBuffer? {
        if case .ping(let payload) = self { return payload }
        return nil
    }
}
