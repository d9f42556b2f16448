// UTF8Validator against the standard library and a byte-at-a-time reference (Unicode Table 3-7).
//
// Input: [split seed] [bytes...]
// Invariants: for the whole input, `validate` + `isComplete` agree with
// `String(validating:as:)`; the failure index is the first byte at which the input can no
// longer become valid UTF-8 (the reference's); fed in data-derived pieces, each in its own
// exactly-sized allocation (so a read past a piece is an AddressSanitizer error), the validator
// reports the same index, and after each accepted piece `isComplete` tells whether the input so
// far ends on a code point boundary.

/// The reference: the index of the first byte that makes `bytes` an invalid prefix (nil if
/// none), and whether the valid prefix before it ends on a code point boundary.
func referenceUTF8(_ bytes: [UInt8]) -> (invalidAt: Int?, boundaryAfter: [Bool]) {
    var boundaryAfter: [Bool] = []
    boundaryAfter.reserveCapacity(bytes.count)
    var need = 0                       // continuation bytes still expected
    var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
    for (i, b) in bytes.enumerated() {
        if need == 0 {
            switch b {
            case 0x00...0x7F: need = 0
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: need = 2
            case 0xED: need = 2; upper = 0x9F
            case 0xF0: need = 3; lower = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; upper = 0x8F
            default: return (i, boundaryAfter)
            }
        } else {
            guard b >= lower && b <= upper else { return (i, boundaryAfter) }
            need -= 1
            lower = 0x80
            upper = 0xBF
        }
        boundaryAfter.append(need == 0)
    }
    return (nil, boundaryAfter)
}

/// Runs the validator over `bytes` copied into a fresh allocation of exactly their size.
func validateIsolated(_ validator: inout UTF8Validator, _ bytes: ArraySlice<UInt8>) -> Int? {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
    defer { copy.deallocate() }
    if !bytes.isEmpty { copy.copyBytes(from: bytes) }
    return validator.validate(UnsafeRawBufferPointer(copy))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 1 else { return 0 }
    let bytes = Array(input[1...])

    let reference = referenceUTF8(bytes)
    let stdlibValid = String(validating: bytes, as: UTF8.self) != nil
    let referenceValid = reference.invalidAt == nil && (reference.boundaryAfter.last ?? true)
    fuzzCheck(stdlibValid == referenceValid, "the reference disagrees with the standard library (bug in the harness)")

    // Whole input.
    var whole = UTF8Validator()
    let wholeAt = validateIsolated(&whole, bytes[...])
    fuzzCheck(wholeAt == reference.invalidAt, "whole: invalid at \(String(describing: wholeAt)), expected \(String(describing: reference.invalidAt))")
    if wholeAt == nil {
        fuzzCheck((whole.isComplete) == referenceValid, "whole: isComplete \(whole.isComplete) but valid is \(stdlibValid)")
        fuzzCheck(UTF8Validator.isValid(bytes) == stdlibValid, "isValid disagrees with the standard library")
    }

    // Data-derived pieces.
    var pieces = UTF8Validator()
    var offset = 0
    var splitAt: Int? = nil
    for length in splitLengths(count: bytes.count, seed: input[0]) {
        if let at = validateIsolated(&pieces, bytes[offset..<(offset + length)]) {
            fuzzCheck(at >= 0 && at < length, "piece: index \(at) outside the piece of \(length)")
            splitAt = offset + at
            break
        }
        offset += length
        fuzzCheck(offset <= reference.boundaryAfter.count,
                  "split: no failure reported, expected one at \(String(describing: reference.invalidAt))")
        fuzzCheck(pieces.isComplete == reference.boundaryAfter[offset - 1],
                  "pieces: isComplete \(pieces.isComplete) after \(offset) bytes, expected \(reference.boundaryAfter[offset - 1])")
    }
    fuzzCheck(splitAt == reference.invalidAt, "split: invalid at \(String(describing: splitAt)), expected \(String(describing: reference.invalidAt))")
    if splitAt == nil { fuzzCheck(pieces.isComplete == referenceValid, "split: isComplete differs at the end") }

    // The validator on an empty buffer changes nothing.
    var empty = UTF8Validator()
    fuzzCheck(empty.validate(UnsafeRawBufferPointer(start: nil, count: 0)) == nil && empty.isComplete, "empty input")
    return 0
}
