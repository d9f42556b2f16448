/// An incremental UTF-8 validator that fails fast (RFC 3629, Unicode Table 3-7).
///
/// Feed it bytes in any split; it reports the first byte at which the input can no longer
/// become valid UTF-8, which is what Autobahn's 6.x cases require of a text message that
/// arrives in fragments or in pieces of one frame.
///
/// Three gears, chosen as the input goes:
/// - runs of ASCII are skipped 64 bytes at a time (then 8);
/// - scattered non-ASCII bytes go through a shift-based DFA: one table load and one shift a
///   byte, no data-dependent branch, eight bytes a step;
/// - dense non-ASCII text (two DFA steps in a row) is checked 16 bytes at a time with SIMD
///   comparisons of each byte against the three before it, until an ASCII block comes.
/// When a block fails, the DFA replays it to name the first invalid byte exactly.
public struct UTF8Validator: Sendable, Equatable {
    /// The DFA state: a bit offset into a row of ``transitions`` (a multiple of 6, see ``State``).
    /// Zero on a code point boundary.
    @usableFromInline var state: UInt64 = State.accept

    /// A validator at a code point boundary, ready for the first byte of a message.
    public init() {}

    /// True when the bytes seen so far end on a code point boundary, i.e. the message may end here.
    @inlinable
    public var isComplete: Bool { state == State.accept }

    /// Validates the next bytes of the input.
    /// - Returns: nil if all bytes can still be part of valid UTF-8, or the offset in `bytes`
    ///   of the first byte that makes the input invalid. The validator must not be used after
    ///   a failure.
    @inlinable
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Int? {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        // Short ASCII on a code point boundary (most small text messages): decided here, inline.
        if state == State.accept && bytes.count <= 64 && Self.isASCII(base, bytes.count) { return nil }
        let (invalidAt, newState) = Self.run(base, bytes.count, state)
        state = newState
        return invalidAt
    }

    /// Whether the `count` (1...64) bytes at `base` are all ASCII.
    @inlinable @inline(__always)
    static func isASCII(_ base: UnsafeRawPointer, _ count: Int) -> Bool {
        var bits: UInt64 = 0
        if count >= 8 {
            var i = 0
            while i &+ 8 < count {
                bits |= base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                i &+= 8
            }
            bits |= base.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)  // the last 8, overlapping
        } else {
            for i in 0..<count { bits |= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) }
        }
        return bits & 0x8080_8080_8080_8080 == 0
    }

    /// Validates bytes from a collection: in place when its storage is contiguous (an array, a
    /// `ByteBufferView`), else through a copy.
    public mutating func validate<C: Collection>(_ bytes: C) -> Int? where C.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ validate(UnsafeRawBufferPointer($0)) }) { return result }
        return Array(bytes).withUnsafeBytes { validate($0) }
    }

    /// Checks a complete input in one call (no copy for contiguous bytes such as
    /// `buffer.readableBytesView`; unlike `String(validating:)`, no string is made).
    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        var validator = UTF8Validator()
        return validator.validate(bytes) == nil && validator.isComplete
    }

    // MARK: - Implementation

    /// Validates `count` bytes at `base` from DFA state `state`.
    /// - Returns: the offset of the first invalid byte (nil if none) and the DFA state after
    ///   the bytes, or before the invalid byte.
    @usableFromInline
    static func run(_ base: UnsafeRawPointer, _ count: Int, _ state: UInt64) -> (Int?, UInt64) {
        transitions.withUnsafeBufferPointer { run(base, count, state, $0.baseAddress!) }
    }

    static func run(_ base: UnsafeRawPointer, _ count: Int, _ state: UInt64, _ table: UnsafePointer<UInt64>) -> (Int?, UInt64) {
        var i = 0
        var s = state
        // Consecutive eight-byte DFA steps: two in a row mean dense non-ASCII text.
        var dfaSteps = 0
        while true {
            if s == State.accept {
                let start = i
                // ASCII: skip whole blocks with no high bit set.
                while i &+ 64 <= count {
                    let p = base + i
                    let a = p.loadUnaligned(as: Lanes.self) | (p + 16).loadUnaligned(as: Lanes.self)
                    let b = (p + 32).loadUnaligned(as: Lanes.self) | (p + 48).loadUnaligned(as: Lanes.self)
                    if hasHighBit(a | b) { break }
                    i &+= 64
                }
                while i &+ 8 <= count {
                    if (base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
                    i &+= 8
                }
                if i != start { dfaSteps = 0 }
            }
            if dfaSteps >= 2 && i >= 3 && i &+ 16 <= count {
                // Dense non-ASCII: SIMD blocks. The bytes before `i` are valid; a code point open
                // at `i` has its lead byte among the three before it, which the blocks look back at.
                let entry = i
                let entryBoundary = s == State.accept ? i : lastLeadByte(base, before: i)
                var ascii = false
                while i &+ 16 <= count {
                    let p = base + i
                    if blockHasError(p) {
                        // Replay the block with the DFA from the last code point boundary before it.
                        let boundary = i == entry ? entryBoundary : lastLeadByte(base, before: i)
                        return locate(base, from: boundary, to: i &+ 16, State.accept, table)
                    }
                    i &+= 16
                    // An ASCII block ends on a code point boundary: back to the skipping gear.
                    if !hasHighBit(p.loadUnaligned(as: Lanes.self)) {
                        ascii = true
                        break
                    }
                }
                // Resume the DFA at the last code point boundary.
                if !ascii { i = lastLeadByte(base, before: i) }
                s = State.accept
                dfaSteps = 0
                continue
            }
            if i &+ 8 <= count {
                // Eight DFA steps. REJECT is absorbing, so one check after the eight suffices.
                let w = UInt64(littleEndian: (base + i).loadUnaligned(as: UInt64.self))
                var t = s
                t = table[Int(UInt8(truncatingIfNeeded: w))] &>> t
                t = table[Int(UInt8(truncatingIfNeeded: w &>> 8))] &>> t
                t = table[Int(UInt8(truncatingIfNeeded: w &>> 16))] &>> t
                t = table[Int(UInt8(truncatingIfNeeded: w &>> 24))] &>> t
                t = table[Int(UInt8(truncatingIfNeeded: w &>> 32))] &>> t
                t = table[Int(UInt8(truncatingIfNeeded: w &>> 40))] &>> t
                t = table[Int(UInt8(truncatingIfNeeded: w &>> 48))] &>> t
                t = table[Int(UInt8(truncatingIfNeeded: w &>> 56))] &>> t
                t &= 63
                if t == State.reject { return locate(base, from: i, to: i &+ 8, s, table) }
                s = t
                i &+= 8
                dfaSteps &+= 1
                continue
            }
            // Fewer than eight bytes left.
            var t = s
            var j = i
            while j < count {
                t = table[Int(base.load(fromByteOffset: j, as: UInt8.self))] &>> t
                j &+= 1
            }
            t &= 63
            if t == State.reject { return locate(base, from: i, to: count, s, table) }
            return (nil, t)
        }
    }

    /// Finds the first byte of `base[from..<to]` that makes the input invalid, starting in state `s`.
    static func locate(_ base: UnsafeRawPointer, from: Int, to: Int, _ s: UInt64, _ table: UnsafePointer<UInt64>) -> (Int?, UInt64) {
        var s = s
        for j in from..<to {
            let t = (table[Int(base.load(fromByteOffset: j, as: UInt8.self))] &>> s) & 63
            if t == State.reject { return (j, s) }
            s = t
        }
        preconditionFailure("UTF8Validator: no invalid byte in a rejected range")
    }

    /// A code point boundary at or before `end` in valid bytes before `end` (with `end` ≥ 3):
    /// `end` itself when no code point is open there, else the lead byte of the open one.
    @inline(__always)
    static func lastLeadByte(_ base: UnsafeRawPointer, before end: Int) -> Int {
        // A lead byte open at `end`: 2+ bytes at end-1, 3+ at end-2, 4 at end-3.
        let b1 = base.load(fromByteOffset: end &- 1, as: UInt8.self)
        let b2 = base.load(fromByteOffset: end &- 2, as: UInt8.self)
        let b3 = base.load(fromByteOffset: end &- 3, as: UInt8.self)
        if b1 >= 0xC0 { return end &- 1 }
        if b2 >= 0xE0 { return end &- 2 }
        if b3 >= 0xF0 { return end &- 3 }
        return end
    }

    // MARK: SIMD blocks

    @usableFromInline typealias Lanes = SIMD16<Int8>

    @inline(__always)
    static func hasHighBit(_ v: Lanes) -> Bool {
        let words = unsafeBitCast(v, to: SIMD2<UInt64>.self)
        return (words[0] | words[1]) & 0x8080_8080_8080_8080 != 0
    }

    /// Whether one of the 16 bytes at `p` breaks a rule of Table 3-7, given the three bytes
    /// before `p` (which must be readable and valid). Each byte is checked against its
    /// predecessors:
    /// - it is a continuation byte exactly when a lead byte 1, 2 or 3 bytes back asks for one
    ///   (C0+ one back, E0+ two back, F0+ three back);
    /// - it is not C0, C1 or F5...FF;
    /// - after E0 it is A0+, after ED at most 9F, after F0 90+, after F4 at most 8F.
    /// Together with valid bytes before `p`, this holds for all 16 exactly when the bytes up
    /// to `p + 16` are a valid prefix of UTF-8.
    @inline(__always)
    static func blockHasError(_ p: UnsafeRawPointer) -> Bool {
        // Bytes as Int8 with the top bit flipped: unsigned order becomes signed order
        // (0x00 -> -128, 0x80 -> 0, 0xC0 -> 0x40, 0xFF -> 0x7F).
        let flip = Lanes(repeating: -128)
        let c = p.loadUnaligned(as: Lanes.self)
        let cf = c ^ flip
        let p1 = (p - 1).loadUnaligned(as: Lanes.self) ^ flip
        let p2 = (p - 2).loadUnaligned(as: Lanes.self) ^ flip
        let p3 = (p - 3).loadUnaligned(as: Lanes.self) ^ flip
        let mustContinue = (p1 .> Lanes(repeating: 0x3F)) .| (p2 .> Lanes(repeating: 0x5F)) .| (p3 .> Lanes(repeating: 0x6F))
        let isContinuation = c .< Lanes(repeating: -64)  // 80...BF are -128...-65
        var error = mustContinue .^ isContinuation
        error .|= cf .> Lanes(repeating: 0x74)  // F5...FF
        error .|= (c | Lanes(repeating: 1)) .== Lanes(repeating: Int8(bitPattern: 0xC1))  // C0, C1
        error .|= (p1 .== Lanes(repeating: 0x60)) .& (cf .< Lanes(repeating: 0x20))  // E0, then 80...9F
        error .|= (p1 .== Lanes(repeating: 0x6D)) .& (cf .> Lanes(repeating: 0x1F))  // ED, then A0...BF
        error .|= (p1 .== Lanes(repeating: 0x70)) .& (cf .< Lanes(repeating: 0x10))  // F0, then 80...8F
        error .|= (p1 .== Lanes(repeating: 0x74)) .& (cf .> Lanes(repeating: 0x0F))  // F4, then 90...BF
        let words = unsafeBitCast(error, to: SIMD2<UInt64>.self)
        return words[0] | words[1] != 0
    }

    // MARK: DFA

    /// DFA states, as bit offsets into a transition row (6 bits per state).
    @usableFromInline
    enum State {
        @usableFromInline static let accept: UInt64 = 0
        static let reject: UInt64 = 6
        /// 1, 2 or 3 more continuation bytes (0x80...0xBF) expected.
        static let cont1: UInt64 = 12
        static let cont2: UInt64 = 18
        static let cont3: UInt64 = 24
        /// After E0: A0...BF (no overlong), then 1 continuation.
        static let afterE0: UInt64 = 30
        /// After ED: 80...9F (no surrogates), then 1 continuation.
        static let afterED: UInt64 = 36
        /// After F0: 90...BF (no overlong), then 2 continuations.
        static let afterF0: UInt64 = 42
        /// After F4: 80...8F (nothing above U+10FFFF), then 2 continuations.
        static let afterF4: UInt64 = 48
    }

    /// For each byte, a row holding the next state of every state: the next state of state `s`
    /// is `(row >> s) & 63`.
    static let transitions: [UInt64] = (0...255).map { b in
        var row: UInt64 = 0
        func edge(_ from: UInt64, _ to: UInt64) { row |= to << from }
        // From the accepting state: a lead byte (or ASCII).
        switch b {
        case 0x00...0x7F: edge(State.accept, State.accept)
        case 0xC2...0xDF: edge(State.accept, State.cont1)
        case 0xE0: edge(State.accept, State.afterE0)
        case 0xE1...0xEC, 0xEE...0xEF: edge(State.accept, State.cont2)
        case 0xED: edge(State.accept, State.afterED)
        case 0xF0: edge(State.accept, State.afterF0)
        case 0xF1...0xF3: edge(State.accept, State.cont3)
        case 0xF4: edge(State.accept, State.afterF4)
        default: edge(State.accept, State.reject)  // 0x80...0xC1 (continuation or overlong lead), 0xF5...0xFF
        }
        edge(State.reject, State.reject)
        // Continuation bytes, with the narrower first ranges after E0, ED, F0, F4.
        let continuation = (0x80...0xBF).contains(b)
        edge(State.cont1, continuation ? State.accept : State.reject)
        edge(State.cont2, continuation ? State.cont1 : State.reject)
        edge(State.cont3, continuation ? State.cont2 : State.reject)
        edge(State.afterE0, (0xA0...0xBF).contains(b) ? State.cont1 : State.reject)
        edge(State.afterED, (0x80...0x9F).contains(b) ? State.cont1 : State.reject)
        edge(State.afterF0, (0x90...0xBF).contains(b) ? State.cont2 : State.reject)
        edge(State.afterF4, (0x80...0x8F).contains(b) ? State.cont2 : State.reject)
        return row
    }
}
