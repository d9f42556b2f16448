/// An incremental UTF-8 validator that fails fast (RFC 3629, Unicode Table 3-7).
///
/// Feed it bytes in any split; it reports the first byte at which the input can no longer
/// become valid UTF-8, which is what Autobahn's 6.x cases require of a text message that
/// arrives in fragments or in pieces of one frame. Runs of ASCII are checked eight bytes at
/// a time.
public struct UTF8Validator: Sendable, Equatable {
    /// Continuation bytes still expected for the current code point.
    @usableFromInline var remaining: UInt8 = 0
    /// Bounds for the next continuation byte (narrower than 0x80...0xBF after E0, ED, F0, F4).
    @usableFromInline var lower: UInt8 = 0x80
    @usableFromInline var upper: UInt8 = 0xBF

    public init() {}

    /// True when the bytes seen so far end on a code point boundary, i.e. the message may end here.
    @inlinable
    public var isComplete: Bool { remaining == 0 }

    /// Validates the next bytes of the input.
    /// - Returns: nil if all bytes can still be part of valid UTF-8, or the offset in `bytes`
    ///   of the first byte that makes the input invalid. The validator must not be used after
    ///   a failure.
    @inlinable
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress else { return nil }
        let count = bytes.count
        var i = 0
        while i < count {
            if remaining == 0 {
                // ASCII fast path: skip whole words with no high bit set.
                while i &+ 16 <= count {
                    let a = (base + i).loadUnaligned(as: UInt64.self)
                    let b = (base + i + 8).loadUnaligned(as: UInt64.self)
                    if (a | b) & 0x8080_8080_8080_8080 != 0 { break }
                    i &+= 16
                }
                while i &+ 8 <= count {
                    if (base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
                    i &+= 8
                }
                if i >= count { return nil }
                let byte = base.load(fromByteOffset: i, as: UInt8.self)
                switch byte {
                case 0x00...0x7F:
                    break
                case 0xC2...0xDF:
                    remaining = 1; lower = 0x80; upper = 0xBF
                case 0xE0:
                    remaining = 2; lower = 0xA0; upper = 0xBF
                case 0xE1...0xEC, 0xEE...0xEF:
                    remaining = 2; lower = 0x80; upper = 0xBF
                case 0xED:
                    remaining = 2; lower = 0x80; upper = 0x9F  // no surrogates
                case 0xF0:
                    remaining = 3; lower = 0x90; upper = 0xBF
                case 0xF1...0xF3:
                    remaining = 3; lower = 0x80; upper = 0xBF
                case 0xF4:
                    remaining = 3; lower = 0x80; upper = 0x8F  // nothing above U+10FFFF
                default:
                    return i  // 0x80...0xC1 (continuation or overlong lead), 0xF5...0xFF
                }
            } else {
                let byte = base.load(fromByteOffset: i, as: UInt8.self)
                guard byte >= lower && byte <= upper else { return i }
                remaining &-= 1
                lower = 0x80
                upper = 0xBF
            }
            i &+= 1
        }
        return nil
    }

    /// Validates bytes from a collection (convenience for tests and small inputs).
    public mutating func validate<C: Collection>(_ bytes: C) -> Int? where C.Element == UInt8 {
        Array(bytes).withUnsafeBytes { validate($0) }
    }

    /// Checks a complete input in one call.
    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        var validator = UTF8Validator()
        return validator.validate(bytes) == nil && validator.isComplete
    }
}
