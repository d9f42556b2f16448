import NIOCore
import Testing
@testable import DuplexCore

/// Masking.apply against a byte-by-byte XOR reference (RFC 6455 §5.3).
@Suite struct MaskingTests {
    /// The reference: payload byte i is XORed with key byte (i + phase) % 4.
    static func naive(_ bytes: [UInt8], key: MaskKey, phase: Int) -> [UInt8] {
        var out = bytes
        naive(&out, range: 0..<out.count, key: key, phase: phase)
        return out
    }

    /// The reference, in place on `range` of `bytes`.
    static func naive(_ bytes: inout [UInt8], range: Range<Int>, key: MaskKey, phase: Int) {
        let k = key.bytes
        for i in range { bytes[i] ^= k[(i - range.lowerBound + phase) & 3] }
    }

    static let keys = [rfcKey, MaskKey(0x01, 0x02, 0x03, 0x04), MaskKey(0xFF, 0x00, 0x80, 0x7F)]

    /// Every phase, lengths 0...100 and a few large ones, at every alignment 0...7 inside a larger
    /// buffer: the masked range equals the reference and the bytes around it are untouched.
    @Test(arguments: 0...3)
    func matchesReferenceAtEveryPhaseLengthAndAlignment(phase: Int) {
        var rng = SeededGenerator(seed: 0x4D41534B + UInt64(phase))
        let lengths = Array(0...100) + [127, 255, 1000, 4099, 65537]
        for (index, key) in Self.keys.enumerated() {
            for length in lengths where length <= 4099 || index == 0 {
                for offset in 0...7 {
                    // Random bytes around the range, so that a write outside it shows.
                    let original = rng.bytes(offset + length + 11)
                    var storage = original
                    storage.withUnsafeMutableBytes { raw in
                        Masking.apply(key, to: UnsafeMutableRawBufferPointer(rebasing: raw[offset..<(offset + length)]),
                                      phase: phase)
                    }
                    var expected = original
                    Self.naive(&expected, range: offset..<(offset + length), key: key, phase: phase)
                    if storage != expected {
                        Issue.record("mismatch: key \(key) phase \(phase) length \(length) offset \(offset)")
                        return
                    }
                }
            }
        }
    }

    @Test func maskingTwiceRestoresTheInput() {
        var rng = SeededGenerator(seed: 7)
        let original = rng.bytes(1234)
        var bytes = original
        bytes.withUnsafeMutableBytes { Masking.apply(rfcKey, to: $0, phase: 2) }
        #expect(bytes != original)
        bytes.withUnsafeMutableBytes { Masking.apply(rfcKey, to: $0, phase: 2) }
        #expect(bytes == original)
    }

    /// Masking a payload in pieces, each with phase = its offset % 4, equals masking it whole.
    @Test func maskingInPiecesEqualsMaskingWhole() {
        var rng = SeededGenerator(seed: 11)
        for _ in 0..<50 {
            let original = rng.bytes(Int.random(in: 0...300, using: &rng))
            let key = MaskKey.random(using: &rng)
            var pieces = original
            var start = 0
            for size in rng.splits(of: original.count, maxPiece: 37) {
                let (s, e) = (start, start + size)
                pieces.withUnsafeMutableBytes { raw in
                    Masking.apply(key, to: UnsafeMutableRawBufferPointer(rebasing: raw[s..<e]), phase: s % 4)
                }
                start = e
            }
            #expect(pieces == Self.naive(original, key: key, phase: 0))
        }
    }

    @Test func phaseIsTakenModuloFour() {
        let original: [UInt8] = Array(0..<23)
        var a = original, b = original
        a.withUnsafeMutableBytes { Masking.apply(rfcKey, to: $0, phase: 1) }
        b.withUnsafeMutableBytes { Masking.apply(rfcKey, to: $0, phase: 5) }
        #expect(a == b)
        #expect(a == Self.naive(original, key: rfcKey, phase: 1))
    }

    @Test func emptyAndNilBuffersAreNoOps() {
        Masking.apply(rfcKey, to: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        var empty: [UInt8] = []
        empty.withUnsafeMutableBytes { Masking.apply(rfcKey, to: $0, phase: 3) }
        #expect(empty.isEmpty)
    }

    @Test func maskKeyByteOrder() {
        #expect(rfcKey.bytes == [0x37, 0xFA, 0x21, 0x3D])
        #expect(MaskKey(packed: rfcKey.packed) == rfcKey)
        #expect(rfcKey.description == "37fa213d")
        #expect(MaskKey(0x00, 0x01, 0x0A, 0xFF).description == "00010aff")
        var rng = SeededGenerator(seed: 3)
        let keys = (0..<16).map { _ in MaskKey.random(using: &rng) }
        #expect(Set(keys).count == 16)
        #expect(MaskKey.random() != MaskKey.random() || MaskKey.random() != MaskKey.random())
    }

    /// FrameWriter masks the payload in the buffer (at whatever offset it lands) like the reference.
    @Test func frameWriterMasksLikeTheReference() {
        var rng = SeededGenerator(seed: 5)
        for length in [0, 1, 3, 7, 8, 31, 32, 33, 125, 126, 1000, 70000] {
            let payload = rng.bytes(length)
            let key = MaskKey.random(using: &rng)
            let prefix = rng.bytes(length % 8)
            var out = ByteBuffer(bytes: prefix)
            FrameWriter.write(opcode: .binary, maskKey: key, payload: ByteBuffer(bytes: payload), to: &out)
            let headerSize = FrameHeader.encodedSize(payloadLength: length, masked: true)
            let written = out.bytes
            #expect(Array(written[..<prefix.count]) == prefix)
            #expect(Array(written[(prefix.count + headerSize)...]) == Self.naive(payload, key: key, phase: 0))
        }
    }
}
