import NIOCore

/// Base64 (RFC 4648 §4, padded) of message payloads for the text-only fallback transports:
/// table-driven in both directions, for payloads of any size (DuplexCore's own base64 is for the
/// handshake's 16-byte keys).
enum Base64Text {
    private static let symbols = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, symbol) in symbols.enumerated() { table[Int(symbol)] = UInt8(index) }
        return table
    }()

    /// Appends the base64 of `bytes` to `out`.
    static func encode(_ bytes: ByteBuffer, into out: inout ByteBuffer) {
        let view = bytes.readableBytesView
        out.reserveCapacity(minimumWritableBytes: (view.count + 2) / 3 * 4)
        var index = view.startIndex
        let end = view.endIndex
        while end - index >= 3 {
            let b0 = view[index], b1 = view[index + 1], b2 = view[index + 2]
            out.writeInteger(symbols[Int(b0 >> 2)])
            out.writeInteger(symbols[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.writeInteger(symbols[Int((b1 & 0x0F) << 2 | b2 >> 6)])
            out.writeInteger(symbols[Int(b2 & 0x3F)])
            index += 3
        }
        let rest = end - index
        guard rest > 0 else { return }
        let b0 = view[index], b1 = rest == 2 ? view[index + 1] : 0
        out.writeInteger(symbols[Int(b0 >> 2)])
        out.writeInteger(symbols[Int((b0 & 0x03) << 4 | b1 >> 4)])
        out.writeInteger(rest == 2 ? symbols[Int((b1 & 0x0F) << 2)] : UInt8(ascii: "="))
        out.writeInteger(UInt8(ascii: "="))
    }

    /// The bytes of padded base64 text; nil for anything malformed (length, symbols, padding).
    static func decode(_ text: some Collection<UInt8>) -> ByteBuffer? {
        let chars = Array(text)
        guard chars.count % 4 == 0 else { return nil }
        var out = ByteBuffer()
        out.reserveCapacity(chars.count / 4 * 3)
        var i = 0
        while i < chars.count {
            let last = i + 4 == chars.count
            let pad = last ? (chars[i + 3] == UInt8(ascii: "=") ? (chars[i + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
            var word: UInt32 = 0
            for j in 0..<(4 - pad) {
                let value = values[Int(chars[i + j])]
                guard value != 0xFF else { return nil }
                word = word << 6 | UInt32(value)
            }
            word <<= UInt32(6 * pad)
            out.writeInteger(UInt8(truncatingIfNeeded: word >> 16))
            if pad < 2 { out.writeInteger(UInt8(truncatingIfNeeded: word >> 8)) }
            if pad < 1 { out.writeInteger(UInt8(truncatingIfNeeded: word)) }
            i += 4
        }
        return out
    }
}
