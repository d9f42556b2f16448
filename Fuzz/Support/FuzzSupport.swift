// Shared helpers of the fuzz targets, compiled into every target (see Fuzz/run.sh).
// The targets are compiled in one module with DuplexCore's sources, so they see its
// internal declarations without `import DuplexCore`.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
#if FUZZ_NET
// Fuzz/Net's targets import DuplexCore (built by Fuzz/run.sh with -enable-testing); the others
// are compiled in one module with its sources.
@testable import DuplexCore
#endif

/// Fails the run with a message when an invariant does not hold. libFuzzer then saves the input.
@inline(never)
func fuzzFail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "FUZZ INVARIANT VIOLATED at \(file):\(line): \(message)\n"
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    abort()
}

@inline(__always)
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
               file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fuzzFail(message(), file: file, line: line) }
}

/// SplitMix64, seeded from the input: the data-derived choices (split points, sizes) of a target.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Chunk lengths that split `count` bytes, derived from `seed`: the seed's low two bits choose
/// the scale (single bytes, small, medium or large pieces), the rest drives the generator.
func splitLengths(count: Int, seed: UInt8) -> [Int] {
    var rng = SplitMix(seed: UInt64(seed) &* 0x1234_5678_9ABC_DEF1)
    let maxChunk: Int
    switch seed & 3 {
    case 0: maxChunk = 1
    case 1: maxChunk = 7
    case 2: maxChunk = 64
    default: maxChunk = 1024
    }
    var lengths: [Int] = []
    var left = count
    while left > 0 {
        let n = min(left, Int.random(in: 1...maxChunk, using: &rng))
        lengths.append(n)
        left -= n
    }
    return lengths
}

/// The input split by `splitLengths`, each piece in its own ByteBuffer.
func splitBuffers(_ bytes: [UInt8], seed: UInt8) -> [ByteBuffer] {
    var offset = 0
    return splitLengths(count: bytes.count, seed: seed).map { n in
        defer { offset += n }
        return ByteBuffer(bytes: bytes[offset..<(offset + n)])
    }
}

extension ByteBuffer {
    var fuzzBytes: [UInt8] { Array(readableBytesView) }
}

/// The fuzzer's input as an array (a copy: targets may keep slices of it).
func fuzzInput(_ start: UnsafeRawPointer?, _ count: Int) -> [UInt8] {
    guard let start, count > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: start, count: count))
}
