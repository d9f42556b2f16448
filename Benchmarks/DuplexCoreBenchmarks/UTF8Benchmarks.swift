import DuplexCore

/// UTF-8 validation of a whole payload. NIO has no UTF-8 validator, so the peer is the Swift
/// standard library: `String(validating:as:)` (validates, then copies into a new String), and
/// `UTF8Span(validating:)` (Swift 6.2+, the same validation without the copy).
func runUTF8Benchmarks(_ harness: Harness) {
    let inputs: [(String, [UInt8])] = [
        ("ASCII 1 KiB", TestData.ascii(1024)),
        ("ASCII 64 KiB", TestData.ascii(64 * 1024)),
        ("mixed 1 KiB", TestData.mixed(1024)),
        ("mixed 64 KiB", TestData.mixed(64 * 1024)),
    ]
    for (label, bytes) in inputs where label.hasPrefix("mixed") {
        print("  \(label): \(TestData.composition(bytes))")
    }
    for (label, bytes) in inputs {
        // Cross-check: all agree that the input is valid.
        precondition(UTF8Validator.isValid(bytes))
        precondition(bytes.withUnsafeBufferPointer { String(validating: $0, as: UTF8.self) } != nil)
        let size = bytes.count
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        bytes.withUnsafeBytes { storage.copyMemory(from: $0) }
        let raw = UnsafeRawBufferPointer(storage)
        let typed = raw.assumingMemoryBound(to: UInt8.self)

        let duplex = Contender(name: "UTF8Validator") { n in
            var acc: UInt64 = 0
            for _ in 0..<n {
                var validator = UTF8Validator()
                let ok = validator.validate(raw) == nil && validator.isComplete
                acc &+= ok ? 1 : 0
            }
            return acc
        }
        harness.compare(
            family: "UTF-8 validation", payload: label, unit: .bytes(size),
            subject: duplex,
            peer: Contender(name: "stdlib String(validating:as:)") { n in
                var acc: UInt64 = 0
                for _ in 0..<n {
                    if let s = String(validating: typed, as: UTF8.self) { acc &+= UInt64(s.utf8.count) }
                }
                return acc
            })
        harness.compare(
            family: "UTF-8 validation", payload: label, unit: .bytes(size),
            subject: duplex,
            peer: Contender(name: "stdlib UTF8Span(validating:)") { n in
                var acc: UInt64 = 0
                for _ in 0..<n {
                    if let span = try? UTF8Span(validating: typed.span) { acc &+= UInt64(span.count) }
                }
                return acc
            })
        _ = storage  // freed at exit; the contenders may still be referenced by the harness
    }
}
