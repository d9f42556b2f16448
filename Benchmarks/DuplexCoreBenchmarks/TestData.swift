import DuplexCore
import NIOCore

/// Deterministic inputs, the same bytes for DuplexCore and its peer.

/// xorshift64*: a fixed seed gives the same bytes on every run.
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

enum TestData {
    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// Printable ASCII text: words and punctuation.
    static func ascii(_ count: Int) -> [UInt8] {
        let text = Array(
            "The quick brown fox jumps over the lazy dog; {\"id\": 42, \"ok\": true, \"msg\": \"hello, world\"}\n"
                .utf8)
        return (0..<count).map { text[$0 % text.count] }
    }

    /// Chat-like text in several scripts: ASCII, Latin-1 accents, Cyrillic and Greek (2-byte
    /// sequences), CJK, Devanagari, symbols (3-byte) and emoji (4-byte). Cut on a code point
    /// boundary and padded with spaces to exactly `count` bytes.
    static func mixed(_ count: Int) -> [UInt8] {
        let lines = [
            "Bonjour à tous, ça va? Déjà vu: naïve café, crème brûlée. ",
            "Grüße aus München! Straße, Größe, Übermaß. ",
            "Привет, как дела? Всё хорошо, спасибо. ",
            "Καλημέρα κόσμε, τι κάνεις; ",
            "你好，世界！今天天气很好。我们去公园吧。 ",
            "こんにちは、元気ですか？ありがとうございます。 ",
            "안녕하세요, 만나서 반갑습니다. ",
            "नमस्ते दुनिया, आप कैसे हैं? ",
            "Price: 42 € (≈ 45 $), temperature −3 °C → 5 °C. ",
            "Great job 👍🎉 see you soon 😀🚀 ",
            "{\"user\": \"zoë\", \"text\": \"on my way 🚲\", \"ts\": 1700000000} ",
            "plain ascii line for the usual English chatter, nothing fancy here. ",
        ]
        var out: [UInt8] = []
        out.reserveCapacity(count + 64)
        var i = 0
        while out.count < count {
            for scalar in lines[i % lines.count].unicodeScalars {
                let encoded = Array(String(scalar).utf8)
                if out.count + encoded.count > count { break }
                out += encoded
            }
            if out.count + 4 > count { break }
            i += 1
        }
        while out.count < count { out.append(0x20) }
        return out
    }

    /// Share of bytes in 1-, 2-, 3- and 4-byte sequences, in percent.
    static func composition(_ bytes: [UInt8]) -> String {
        var counts = [0, 0, 0, 0]
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            let n = String(scalar).utf8.count
            counts[n - 1] += n
        }
        return counts.enumerated().map { "\($0.offset + 1)-byte \(formatFixed(Double($0.element) * 100 / Double(bytes.count), digits: 0))%" }
            .joined(separator: ", ")
    }

    /// Client-to-server text frames (masked, each with its own key) of `payloadSize` ASCII bytes,
    /// as many whole frames as fit in `totalBytes`.
    static func maskedTextFrames(totalBytes: Int, payloadSize: Int) -> (bytes: ByteBuffer, frames: Int) {
        var rng = SplitMix(seed: 0xF4A3)
        let text = ascii(payloadSize * 97)
        let frameSize = FrameHeader.encodedSize(payloadLength: payloadSize, masked: true) + payloadSize
        let frames = totalBytes / frameSize
        var out = ByteBuffer()
        out.reserveCapacity(frames * frameSize)
        for i in 0..<frames {
            let start = (i * payloadSize) % (text.count - payloadSize)
            let payload = ByteBuffer(bytes: text[start..<(start + payloadSize)])
            FrameWriter.write(opcode: .text, maskKey: MaskKey.random(using: &rng), payload: payload, to: &out)
        }
        return (out, frames)
    }
}
