import DuplexCore
import NIOCore
import NIOWebSocket

/// Unmasking a payload in place: DuplexCore `Masking.apply` vs NIOWebSocket
/// `ByteBuffer.webSocketUnmask(_:indexOffset:)`, on the same ByteBuffer bytes and key.
/// Both go through the ByteBuffer's mutable-bytes accessor (a uniqueness check, no copy).
func runMaskingBenchmarks(_ harness: Harness) {
    let keyBytes: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
    let duplexKey = MaskKey(keyBytes[0], keyBytes[1], keyBytes[2], keyBytes[3])
    let nioKey = WebSocketMaskingKey(keyBytes)!

    for (size, label) in [(16, "16 B"), (1024, "1 KiB"), (64 * 1024, "64 KiB")] {
        let bytes = TestData.randomBytes(size, seed: UInt64(size))

        // Cross-check: both sides produce the same unmasked bytes, from phase 0 and 1.
        for phase in 0..<2 {
            var a = ByteBuffer(bytes: bytes)
            var b = ByteBuffer(bytes: bytes)
            a.withUnsafeMutableReadableBytes { Masking.apply(duplexKey, to: $0, phase: phase) }
            b.webSocketUnmask(nioKey, indexOffset: phase)
            precondition(a == b, "Masking.apply and webSocketUnmask disagree (\(size) B, phase \(phase))")
        }

        // A buffer of its own per sample (a local variable, so no exclusivity checks in the loop).
        let last = size - 1
        harness.compare(
            family: "unmask", payload: label, unit: .bytes(size),
            subject: Contender(name: "Masking.apply") { n in
                var duplexBuffer = ByteBuffer(bytes: bytes)
                var acc: UInt64 = 0
                for _ in 0..<n {
                    duplexBuffer.withUnsafeMutableReadableBytes { Masking.apply(duplexKey, to: $0) }
                    acc &+= UInt64(duplexBuffer.getInteger(at: last, as: UInt8.self)!)
                }
                return acc
            },
            peer: Contender(name: "NIO webSocketUnmask") { n in
                var nioBuffer = ByteBuffer(bytes: bytes)
                var acc: UInt64 = 0
                for _ in 0..<n {
                    nioBuffer.webSocketUnmask(nioKey)
                    acc &+= UInt64(nioBuffer.getInteger(at: last, as: UInt8.self)!)
                }
                return acc
            })
    }
}
