import DuplexCore
import NIOCore

/// What a topic's fan-out costs to encode, per delivery, for one 1 KiB JSON text message
/// published to 100 subscribers, by kind of subscriber:
/// - plain (no extension): the frame is built once and its bytes written to all;
/// - permessage-deflate without context takeover on the server's side: one compressed frame,
///   made once (`Connection.encodeForSharing`) and written to all;
/// - permessage-deflate with context takeover: each subscriber compresses for itself;
/// - without context takeover but not shared (what a server that compresses per subscriber pays:
///   a fresh zlib stream per message per subscriber).
func runFanoutEncodingBenchmarks(_ harness: Harness) {
    guard harness.shouldRun("fanout") else { return }
    let subscribers = 100
    let payload = ByteBuffer(string: jsonLikeText(bytes: 1024))
    let unit = Unit.items(subscribers, "deliveries")

    func deflateServer(noContextTakeover: Bool) -> Connection {
        let deflate = PerMessageDeflate(configuration: PerMessageDeflateConfiguration(noContextTakeover: noContextTakeover),
                                        localWindowBits: 15, localNoContextTakeover: noContextTakeover,
                                        peerWindowBits: 15, peerNoContextTakeover: false)
        return Connection(role: .server, extensions: [deflate])
    }

    let plain = Contender(name: "plain, one frame") { n in
        var acc: UInt64 = 0
        for _ in 0..<n {
            var frame = ByteBuffer()
            FrameWriter.write(opcode: .text, payload: payload, to: &frame)
            for _ in 0..<subscribers { acc &+= UInt64(frame.readableBytes) }  // the same bytes for each
        }
        return acc
    }
    let shared = Contender(name: "deflate no-takeover, one shared frame") { n in
        var connection = deflateServer(noContextTakeover: true)
        var acc: UInt64 = 0
        for _ in 0..<n {
            let frame = try! connection.encodeForSharing(.text, payload: payload)
            for _ in 0..<subscribers { acc &+= UInt64(frame.readableBytes) }
        }
        return acc
    }
    func perSubscriber(noContextTakeover: Bool) -> Contender {
        Contender(name: noContextTakeover ? "deflate no-takeover, per subscriber" : "deflate takeover, per subscriber") { n in
            var connections = (0..<subscribers).map { _ in deflateServer(noContextTakeover: noContextTakeover) }
            var acc: UInt64 = 0
            for _ in 0..<n {
                for index in connections.indices {
                    try! connections[index].send(.text, payload: payload)
                    acc &+= UInt64(connections[index].takeOutbound()!.readableBytes)
                }
            }
            for index in connections.indices { connections[index].transportClosed() }
            return acc
        }
    }
    let family = "fanout encoding, 1 KiB JSON to \(subscribers) subscribers"
    harness.compare(family: family, payload: "1 KiB", unit: unit, subject: plain, peer: shared)
    harness.compare(family: family, payload: "1 KiB", unit: unit, subject: shared, peer: perSubscriber(noContextTakeover: false))
    harness.compare(family: family, payload: "1 KiB", unit: unit, subject: shared, peer: perSubscriber(noContextTakeover: true))
}
