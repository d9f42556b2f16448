import NIOCore
import Testing
@testable import DuplexCore

/// Messages sent by one Connection and received by its peer, both directions.
@Suite struct RoundTripTests {
    static let fixedSizes = [0, 1, 125, 126, 127, 65535, 65536]

    static func sizes(seed: UInt64) -> [Int] {
        var rng = SeededGenerator(seed: seed)
        return fixedSizes + [200_000, 20_000, 2_000].map { Int.random(in: 1...$0, using: &rng) }
    }

    /// Sends one message from `sender` to a peer and checks the frames on the wire and the event.
    static func roundTrip(
        from sender: Role, opcode: Opcode, payload: [UInt8], text: String?, fragmentSize: Int?,
        rng: inout SeededGenerator, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        var a = Connection(role: sender)
        var b = Connection(role: sender.peer)
        if let text {
            try a.send(text: text, fragmentSize: fragmentSize)
        } else {
            try a.send(binary: ByteBuffer(bytes: payload), fragmentSize: fragmentSize)
        }
        let wire = try outbound(of: &a, sourceLocation: sourceLocation)

        // The frames: masked iff sent by a client, with a fresh key each; fragmented as asked.
        let frames = decodeFrames(sentBy: sender, wire, sourceLocation: sourceLocation)
        let expectedCount = fragmentSize.map { payload.isEmpty ? 1 : (payload.count + $0 - 1) / $0 } ?? 1
        #expect(frames.count == expectedCount, sourceLocation: sourceLocation)
        #expect(frames.first?.opcode == opcode, sourceLocation: sourceLocation)
        #expect(frames.dropFirst().allSatisfy { $0.opcode == .continuation }, sourceLocation: sourceLocation)
        #expect(frames.dropLast().allSatisfy { !$0.fin } && frames.last?.fin == true, sourceLocation: sourceLocation)
        #expect(frames.allSatisfy { $0.reservedBits.isEmpty }, sourceLocation: sourceLocation)
        if let fragmentSize {
            #expect(frames.allSatisfy { $0.payload.readableBytes <= fragmentSize }, sourceLocation: sourceLocation)
        }
        #expect(frames.flatMap(\.payload.bytes) == payload, sourceLocation: sourceLocation)
        let keys = frames.compactMap(\.maskKey)
        if sender == .client {
            #expect(keys.count == frames.count, "every client frame is masked", sourceLocation: sourceLocation)
            #expect(Set(keys).count == keys.count, "a fresh key per frame", sourceLocation: sourceLocation)
            if fragmentSize == nil && payload.count >= 8 {
                // Masked on the wire: the payload does not appear in clear (unless the key is 0: p = 2^-32).
                #expect(wire.bytes.suffix(payload.count) != payload, sourceLocation: sourceLocation)
            }
        } else {
            #expect(keys.isEmpty, "server frames are not masked", sourceLocation: sourceLocation)
        }

        // Received whole, and in random pieces.
        let expected: ConnectionEvent = opcode == .text ? .text(ByteBuffer(bytes: payload)) : .binary(ByteBuffer(bytes: payload))
        b.receive(wire)
        #expect(drain(&b) == [expected], sourceLocation: sourceLocation)
        #expect(b.failure == nil, sourceLocation: sourceLocation)
        var c = Connection(role: sender.peer)
        let events = feed(&c, wire.bytes, pieces: rng.splits(of: wire.readableBytes, maxPiece: max(1, wire.readableBytes / 3)))
        #expect(events == [expected], sourceLocation: sourceLocation)
    }

    @Test(arguments: [Role.client, .server])
    func binaryMessages(from sender: Role) throws {
        var rng = SeededGenerator(seed: sender == .client ? 100 : 200)
        for size in Self.sizes(seed: sender == .client ? 1 : 2) {
            let payload = rng.bytes(size)
            try Self.roundTrip(from: sender, opcode: .binary, payload: payload, text: nil, fragmentSize: nil, rng: &rng)
            let fragmentSize = max(1, size / 5 + Int.random(in: 0...9, using: &rng))
            try Self.roundTrip(from: sender, opcode: .binary, payload: payload, text: nil, fragmentSize: fragmentSize,
                               rng: &rng)
        }
    }

    @Test(arguments: [Role.client, .server])
    func textMessages(from sender: Role) throws {
        var rng = SeededGenerator(seed: sender == .client ? 300 : 400)
        for size in Self.sizes(seed: sender == .client ? 3 : 4) {
            let text = rng.text(byteCount: size)
            let payload = Array(text.utf8)
            try Self.roundTrip(from: sender, opcode: .text, payload: payload, text: text, fragmentSize: nil, rng: &rng)
            // Fragment boundaries fall inside code points; the receiver validates across them.
            let fragmentSize = max(1, size / 6 + Int.random(in: 0...9, using: &rng))
            try Self.roundTrip(from: sender, opcode: .text, payload: payload, text: text, fragmentSize: fragmentSize,
                               rng: &rng)
        }
    }

    @Test(arguments: [Role.client, .server])
    func tinyFragments(from sender: Role) throws {
        var rng = SeededGenerator(seed: 5)
        let text = "κόσμε 😀 ∑"
        try Self.roundTrip(from: sender, opcode: .text, payload: Array(text.utf8), text: text, fragmentSize: 1, rng: &rng)
        try Self.roundTrip(from: sender, opcode: .binary, payload: rng.bytes(40), text: nil, fragmentSize: 3, rng: &rng)
    }

    /// A conversation: many messages both ways through one pair of connections, then a close.
    @Test func conversation() throws {
        var rng = SeededGenerator(seed: 42)
        var client = Connection(role: .client)
        var server = Connection(role: .server)
        var clientKeys: [MaskKey] = []
        for i in 0..<40 {
            let text = rng.text(byteCount: Int.random(in: 0...300, using: &rng))
            let binary = rng.bytes(Int.random(in: 0...300, using: &rng))
            let fragment: Int? = i % 3 == 0 ? Int.random(in: 1...50, using: &rng) : nil
            try client.send(text: text, fragmentSize: fragment)
            try client.ping(ByteBuffer(string: "\(i)"))
            let wire = try outbound(of: &client)
            clientKeys += decodeFrames(sentBy: .client, wire).compactMap(\.maskKey)
            server.receive(wire)
            #expect(drain(&server) == [.text(ByteBuffer(string: text)), .ping(ByteBuffer(string: "\(i)"))])

            try server.send(binary: ByteBuffer(bytes: binary), fragmentSize: fragment)
            client.receive(try outbound(of: &server))  // the automatic pong (queued first), then the message
            #expect(drain(&client) == [.pong(ByteBuffer(string: "\(i)")), .binary(ByteBuffer(bytes: binary))])
            #expect(client.takeOutbound() == nil)
        }
        #expect(clientKeys.count >= 80)
        #expect(Set(clientKeys).count == clientKeys.count)
        try client.close(code: .normalClosure, reason: "done")
        server.receive(try outbound(of: &client))
        #expect(drain(&server) == [.close(CloseFrame(code: .normalClosure, reason: "done"))])
        client.receive(try outbound(of: &server))
        #expect(drain(&client) == [.close(CloseFrame(code: .normalClosure))])
        #expect(client.isCleanlyClosed && server.isCleanlyClosed)
        #expect(server.shouldCloseTransport && !client.shouldCloseTransport)
    }
}
