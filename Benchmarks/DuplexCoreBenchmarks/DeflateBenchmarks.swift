import DuplexCore
import NIOCore

/// Echo of a 16 KiB JSON-like text message through two `Connection`s (client sends, server
/// receives and sends it back, client receives), with permessage-deflate negotiated vs without:
/// what compression costs in CPU, and what it saves on the wire. Here the "peer" is Duplex
/// itself without compression, so a ratio under 1 is the price of compressing.
func runDeflateBenchmarks(_ harness: Harness) {
    guard harness.shouldRun("deflate") else { return }
    let message = jsonLikeText(bytes: 16 * 1024)

    func pair(deflate: Bool) -> (client: Connection, server: Connection) {
        guard deflate else { return (Connection(role: .client), Connection(role: .server)) }
        let clientNegotiator = PerMessageDeflate.ClientNegotiator()
        let accepted = PerMessageDeflate.ServerNegotiator().accept(offers: clientNegotiator.offers())!
        let clientExtension = try! clientNegotiator.accept(response: accepted.response)
        return (Connection(role: .client, extensions: [clientExtension]), Connection(role: .server, extensions: [accepted.extension]))
    }

    /// One echo; returns the bytes that crossed the wire both ways.
    func echo(_ client: inout Connection, _ server: inout Connection) -> Int {
        try! client.send(text: message)
        let up = client.takeOutbound()!
        server.receive(up)
        guard case .text(let received) = server.nextEvent() else { fatalError("server got no text") }
        try! server.send(.text, payload: received)
        let down = server.takeOutbound()!
        client.receive(down)
        guard case .text(let back) = client.nextEvent(), back.readableBytes == message.utf8.count else {
            fatalError("client got no echo")
        }
        return up.readableBytes + down.readableBytes
    }

    var probe = pair(deflate: true)
    let compressedWire = echo(&probe.client, &probe.server)
    var plainProbe = pair(deflate: false)
    let plainWire = echo(&plainProbe.client, &plainProbe.server)

    harness.compare(
        family: "echo 16 KiB JSON text, client+server Connection", payload: "\(message.utf8.count) B",
        unit: .bytes(message.utf8.count),
        subject: Contender(name: "permessage-deflate") { n in
            var (client, server) = pair(deflate: true)
            var acc: UInt64 = 0
            for _ in 0..<n { acc &+= UInt64(echo(&client, &server)) }
            return acc
        },
        peer: Contender(name: "uncompressed") { n in
            var (client, server) = pair(deflate: false)
            var acc: UInt64 = 0
            for _ in 0..<n { acc &+= UInt64(echo(&client, &server)) }
            return acc
        }
    )
    print("  wire bytes per echo (both ways): permessage-deflate \(compressedWire), uncompressed \(plainWire)"
        + " (\(formatFixed(Double(plainWire) / Double(compressedWire), digits: 1))x smaller)")
}

/// A deterministic ticker-like JSON array of about `bytes` bytes.
func jsonLikeText(bytes: Int) -> String {
    var generator = SplitMix(seed: 42)
    var out = "["
    let symbols = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "DPLX"]
    while out.utf8.count < bytes - 120 {
        let symbol = symbols[Int(generator.next() % UInt64(symbols.count))]
        let price = Double(generator.next() % 1_000_000) / 100
        let size = generator.next() % 5000
        out += "{\"symbol\":\"\(symbol)\",\"price\":\(price),\"size\":\(size),\"side\":\"\(generator.next() % 2 == 0 ? "buy" : "sell")\"},"
    }
    out += "{\"end\":true}]"
    return out
}
