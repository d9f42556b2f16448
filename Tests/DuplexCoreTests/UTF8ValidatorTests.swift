import NIOCore
import Testing
@testable import DuplexCore

/// UTF8Validator: validity, fail-fast positions, incremental use, and a stdlib reference.
@Suite struct UTF8ValidatorTests {
    /// "κόσμε" as Autobahn spells it, with U+1F79 GREEK SMALL LETTER OMICRON WITH OXIA (3 bytes).
    static let kosme: [UInt8] = [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5]

    static let valid: [[UInt8]] = [
        [],
        Array("Hello, world".utf8),
        Array(String(repeating: "abcdefgh", count: 9).utf8),  // long ASCII: the word-at-a-time path
        [0x00, 0x7F],
        [0xC2, 0x80], [0xDF, 0xBF],  // U+0080, U+07FF
        [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80],  // U+0800, U+D7FF, U+E000
        [0xEF, 0xBF, 0xBF],  // U+FFFF
        [0xEF, 0xBB, 0xBF],  // BOM
        [0xF0, 0x90, 0x80, 0x80],  // U+10000
        [0xF4, 0x8F, 0xBF, 0xBF],  // U+10FFFF
        kosme,
        Array("😀 naïve café 日本語 𝄞".utf8),
        Array(String(repeating: "a", count: 31).utf8) + [0xF0, 0x9F, 0x98, 0x80] + Array(String(repeating: "b", count: 40).utf8),
    ]

    /// Invalid inputs and the index of the first byte that makes them impossible to complete.
    static let invalid: [(bytes: [UInt8], failsAt: Int)] = [
        ([0xC0, 0x80], 0),  // overlong NUL
        ([0xC1, 0xBF], 0),  // overlong
        ([0xE0, 0x80, 0x80], 1),  // overlong 3-byte
        ([0xE0, 0x9F, 0xBF], 1),
        ([0xF0, 0x80, 0x80, 0x80], 1),  // overlong 4-byte
        ([0xF0, 0x8F, 0xBF, 0xBF], 1),
        ([0xED, 0xA0, 0x80], 1),  // U+D800
        ([0xED, 0xBF, 0xBF], 1),  // U+DFFF
        ([0xF4, 0x90, 0x80, 0x80], 1),  // U+110000
        ([0xF5, 0x80, 0x80, 0x80], 0),
        ([0xF8, 0x88, 0x80, 0x80, 0x80], 0),
        ([0xFE], 0), ([0xFF], 0),
        ([0x80], 0), ([0xBF], 0),  // lone continuation bytes
        ([0x41, 0x80], 1),
        ([0xC2, 0x41], 1),  // a lead byte followed by ASCII
        ([0xE1, 0x80, 0x41], 2),
        ([0xF1, 0x80, 0x80, 0xC2], 3),
        ([0xC2, 0x80, 0x80], 2),  // one continuation byte too many
        (kosme + [0xED, 0xA0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64], 12),  // Autobahn 6.4.x: at the A0
        (Array(String(repeating: "x", count: 40).utf8) + [0xFF] + Array("tail".utf8), 40),
    ]

    static let truncated: [[UInt8]] = [
        [0xC2], [0xE0], [0xE0, 0xA0], [0xED, 0x9F], [0xF0], [0xF0, 0x90], [0xF0, 0x90, 0x80], [0xF4, 0x8F, 0xBF],
        kosme + [0xCE], Array(String(repeating: "y", count: 17).utf8) + [0xF3, 0xBF],
    ]

    /// Contiguous bytes (an array, a ByteBuffer's view at any reader index) are validated in
    /// place, other collections through a copy: the answers are the same.
    @Test func contiguousAndCopiedCollectionsAgree() {
        let samples = Self.valid + Self.invalid.map(\.bytes) + Self.truncated
        for bytes in samples {
            var buffer = ByteBuffer(bytes: [0x41] + bytes)
            buffer.moveReaderIndex(forwardBy: 1)
            let expected = UTF8Validator.isValid(bytes)
            #expect(UTF8Validator.isValid(buffer.readableBytesView) == expected, "\(bytes)")
            #expect(UTF8Validator.isValid(bytes.lazy.map { $0 }) == expected, "\(bytes)")
            var inPlace = UTF8Validator(), copied = UTF8Validator()
            #expect(inPlace.validate(buffer.readableBytesView) == copied.validate(bytes.lazy.map { $0 }), "\(bytes)")
        }
    }

    @Test func acceptsValidSamples() {
        for sample in Self.valid {
            var validator = UTF8Validator()
            #expect(validator.validate(sample) == nil, "\(sample)")
            #expect(validator.isComplete, "\(sample)")
            #expect(UTF8Validator.isValid(sample), "\(sample)")
        }
    }

    @Test func rejectsInvalidSamplesAtTheFirstImpossibleByte() {
        for (bytes, failsAt) in Self.invalid {
            var validator = UTF8Validator()
            #expect(validator.validate(bytes) == failsAt, "\(bytes)")
            #expect(!UTF8Validator.isValid(bytes), "\(bytes)")
        }
    }

    @Test func everyNonLeadByteFailsAtOnce() {
        for byte in [UInt8](0x80...0xC1) + [UInt8](0xF5...0xFF) {
            var validator = UTF8Validator()
            #expect(validator.validate([byte]) == 0, "0x\(String(byte, radix: 16))")
        }
        for byte in [UInt8](0xC2...0xF4) {
            var validator = UTF8Validator()
            #expect(validator.validate([byte]) == nil, "0x\(String(byte, radix: 16))")
            #expect(!validator.isComplete)
        }
    }

    @Test func failurePositionAfterAnyASCIIPrefix() {
        // Crosses the word-at-a-time ASCII path at every length and alignment.
        for prefix in 0...70 {
            let ascii = [UInt8](repeating: 0x61, count: prefix)
            for (bad, at) in [([UInt8]([0x80]), 0), ([0xE0, 0x80], 1), ([0xC2, 0xC2], 1), ([0xF4, 0x90], 1)] {
                var validator = UTF8Validator()
                #expect(validator.validate(ascii + bad + ascii) == prefix + at, "prefix \(prefix) \(bad)")
            }
        }
    }

    @Test func truncatedInputIsIncompleteNotInvalid() {
        for bytes in Self.truncated {
            var validator = UTF8Validator()
            #expect(validator.validate(bytes) == nil, "\(bytes)")
            #expect(!validator.isComplete, "\(bytes)")
            #expect(!UTF8Validator.isValid(bytes), "\(bytes)")
        }
    }

    /// Byte by byte, the failure comes when the same absolute byte is fed.
    @Test func byteByByteFailsAtTheSamePosition() {
        for (bytes, failsAt) in Self.invalid {
            var validator = UTF8Validator()
            var failedAt: Int? = nil
            for (i, byte) in bytes.enumerated() {
                if validator.validate([byte]) != nil {
                    failedAt = i
                    break
                }
            }
            #expect(failedAt == failsAt, "\(bytes)")
        }
        for sample in Self.valid + Self.truncated {
            var validator = UTF8Validator()
            for byte in sample { #expect(validator.validate([byte]) == nil) }
            #expect(validator.isComplete == UTF8Validator.isValid(sample))
        }
    }

    /// In random splits, the offset returned within the failing piece maps to the same absolute position.
    @Test func randomSplitsFailAtTheSamePosition() {
        var rng = SeededGenerator(seed: 0x55_54_46_38)
        for (bytes, failsAt) in Self.invalid {
            for _ in 0..<10 {
                var validator = UTF8Validator()
                var start = 0
                var failedAt: Int? = nil
                for size in rng.splits(of: bytes.count, maxPiece: 9) {
                    if let at = validator.validate(bytes[start..<(start + size)]) {
                        failedAt = start + at
                        break
                    }
                    start += size
                }
                #expect(failedAt == failsAt, "\(bytes)")
            }
        }
    }

    /// The reference fail-fast position: where the standard library's decoder finds the first
    /// maximal ill-formed subsequence, unless that subsequence is a truncated code point at the end.
    static func referenceFailure(_ bytes: [UInt8]) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var position = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar):
                position += scalar.count
            case .emptyInput:
                return nil
            case .error(let length):
                let lead = bytes[position]
                if (0x80...0xC1).contains(lead) || lead >= 0xF5 { return position }
                return position + length == bytes.count ? nil : position + length
            }
        }
    }

    /// Random byte strings: isValid agrees with String(validating:), and the failure position
    /// with the reference.
    @Test func agreesWithTheStandardLibrary() {
        var rng = SeededGenerator(seed: 0xC0FFEE)
        // Bytes near the edges of the UTF-8 table, so that random strings are often almost valid.
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                    0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
        var validCount = 0
        for round in 0..<4000 {
            let length = Int.random(in: 0...14, using: &rng)
            let bytes: [UInt8] = (0..<length).map { _ in
                round % 4 == 0 ? UInt8.random(in: 0...255, using: &rng) : interesting.randomElement(using: &rng)!
            }
            let expected = String(validating: bytes, as: UTF8.self) != nil
            #expect(UTF8Validator.isValid(bytes) == expected, "\(bytes)")
            var validator = UTF8Validator()
            #expect(validator.validate(bytes) == Self.referenceFailure(bytes), "\(bytes)")
            if expected { validCount += 1 }
        }
        #expect(validCount > 100)  // the generator does produce valid strings too
    }

    /// Random valid text, fed in random pieces, stays valid and complete.
    @Test func randomValidTextInRandomPieces() {
        var rng = SeededGenerator(seed: 99)
        for _ in 0..<200 {
            let bytes = Array(rng.text(byteCount: Int.random(in: 0...200, using: &rng)).utf8)
            var validator = UTF8Validator()
            var start = 0
            for size in rng.splits(of: bytes.count, maxPiece: 13) {
                #expect(validator.validate(bytes[start..<(start + size)]) == nil)
                start += size
            }
            #expect(validator.isComplete)
        }
    }
}
