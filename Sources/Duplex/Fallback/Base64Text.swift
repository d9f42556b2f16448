import NIOCore

/// Base64 (RFC 4648 §4, padded) of message payloads for the text-only fallback transports:
/// table-driven over raw buffers in both directions, for payloads of any size (DuplexCore's own
/// base64 is for the handshake's 16-byte keys).
enum Base64Text {
    private static let symbols = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, symbol) in symbols.enumerated() { table[Int(symbol)] = UInt8(index) }
        return table
    }()

    /// Appends the base64 of `bytes` to `out`.
    static func encode(_ bytes: ByteBuffer, into out: inout ByteBuffer) {
        let length = (bytes.readableBytes + 2) / 3 * 4
        guard length > 0 else { return }
        bytes.withUnsafeReadableBytes { input in
            symbols.withUnsafeBufferPointer { symbols in
                _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
                    let count = input.count
                    var i = 0, o = 0
                    while count - i >= 3 {
                        let word = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                        output[o] = symbols[Int(word >> 18)]
                        output[o + 1] = symbols[Int(word >> 12 & 0x3F)]
                        output[o + 2] = symbols[Int(word >> 6 & 0x3F)]
                        output[o + 3] = symbols[Int(word & 0x3F)]
                        i += 3
                        o += 4
                    }
                    if count - i > 0 {
                        let two = count - i == 2
                        let word = UInt32(input[i]) << 16 | (two ? UInt32(input[i + 1]) << 8 : 0)
                        output[o] = symbols[Int(word >> 18)]
                        output[o + 1] = symbols[Int(word >> 12 & 0x3F)]
                        output[o + 2] = two ? symbols[Int(word >> 6 & 0x3F)] : UInt8(ascii: "=")
                        output[o + 3] = UInt8(ascii: "=")
                    }
                    return length
                }
            }
        }
    }

    /// The bytes of padded base64 text; nil for anything malformed (length, symbols, padding).
    static func decode(_ text: String.UTF8View) -> ByteBuffer? {
        var text = String(text)
        return text.withUTF8 { decode(UnsafeRawBufferPointer($0)) }
    }

    /// The bytes of padded base64 text; nil for anything malformed (length, symbols, padding).
    static func decode(_ chars: UnsafeRawBufferPointer) -> ByteBuffer? {
        guard chars.count % 4 == 0 else { return nil }
        guard !chars.isEmpty else { return ByteBuffer() }
        let pad = chars[chars.count - 1] == UInt8(ascii: "=") ? (chars[chars.count - 2] == UInt8(ascii: "=") ? 2 : 1) : 0
        let length = chars.count / 4 * 3 - pad
        var out = ByteBuffer()
        let valid = values.withUnsafeBufferPointer { values in
            var valid = true
            _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { output in
                var i = 0, o = 0
                while i < chars.count {
                    let last = i + 4 == chars.count
                    let digits = last ? 4 - pad : 4
                    var word: UInt32 = 0
                    for j in 0..<digits {
                        let value = values[Int(chars[i + j])]
                        if value == 0xFF { valid = false }
                        word = word << 6 | UInt32(value & 0x3F)
                    }
                    word <<= UInt32(6 * (4 - digits))
                    output[o] = UInt8(truncatingIfNeeded: word >> 16)
                    if digits > 2 { output[o + 1] = UInt8(truncatingIfNeeded: word >> 8) }
                    if digits > 3 { output[o + 2] = UInt8(truncatingIfNeeded: word) }
                    i += 4
                    o += digits - 1
                }
                return length
            }
            return valid
        }
        return valid ? out : nil
    }
}
