/// XOR masking of payload bytes (RFC 6455 §5.3), eight bytes at a time.
///
/// Masking and unmasking are the same operation. `phase` is the index into the key of the
/// first byte (the payload offset modulo 4), so a payload can be masked in pieces.
public enum Masking {
    /// Masks or unmasks `bytes` in place with `key`, starting at key position `phase` (0...3).
    @inlinable
    public static func apply(_ key: MaskKey, to bytes: UnsafeMutableRawBufferPointer, phase: Int = 0) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let count = bytes.count
        // Rotate the key so that key byte `phase` lines up with the first payload byte.
        let shift = UInt32(truncatingIfNeeded: (phase & 3) * 8)
        let rotated = shift == 0 ? key.packed : (key.packed >> shift) | (key.packed << (32 - shift))
        // Little-endian word loads: payload byte i meets key byte (i + phase) % 4.
        // `rotated` holds the key with byte 0 lowest; as a little-endian word in memory that is
        // wire order, and `init(littleEndian:)` swaps it on big-endian machines.
        let wordKey = UInt64(littleEndian: UInt64(rotated) | UInt64(rotated) << 32)
        var i = 0
        // 32 bytes per iteration: four independent 8-byte XORs.
        while i &+ 32 <= count {
            let p = base + i
            let a = p.loadUnaligned(as: UInt64.self) ^ wordKey
            let b = (p + 8).loadUnaligned(as: UInt64.self) ^ wordKey
            let c = (p + 16).loadUnaligned(as: UInt64.self) ^ wordKey
            let d = (p + 24).loadUnaligned(as: UInt64.self) ^ wordKey
            p.storeBytes(of: a, as: UInt64.self)
            (p + 8).storeBytes(of: b, as: UInt64.self)
            (p + 16).storeBytes(of: c, as: UInt64.self)
            (p + 24).storeBytes(of: d, as: UInt64.self)
            i &+= 32
        }
        while i &+ 8 <= count {
            let p = base + i
            p.storeBytes(of: p.loadUnaligned(as: UInt64.self) ^ wordKey, as: UInt64.self)
            i &+= 8
        }
        // Tail: i is a multiple of 8 (and of 4), so key position restarts at 0 of `rotated`.
        var k = rotated
        while i < count {
            let p = base + i
            p.storeBytes(of: p.load(as: UInt8.self) ^ UInt8(truncatingIfNeeded: k), as: UInt8.self)
            k = (k >> 8) | (k << 24)
            i &+= 1
        }
    }
}
