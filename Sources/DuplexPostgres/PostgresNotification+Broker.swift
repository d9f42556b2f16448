import Crypto
import Duplex
import NIOCore

/// How ``PostgresBroker`` names channels and writes NOTIFY payloads.
///
/// Channel: `duplex:` + the topic when it is at most 56 bytes of `A-Z a-z 0-9 . _ : -`, else
/// `duplex#` + 40 hex digits of the topic's SHA-256 (PostgreSQL truncates identifiers at 63 bytes);
/// the payload names its topic, so a shared channel is told apart.
///
/// Payload (text): kind (`t` inline text, `r` row reference), the origin's node id (32 hex digits),
/// the topic's length in bytes, `:`, the topic, then the text (`t`) or the row's id (`r`).
enum PostgresWire {
    static func channel(for topic: String, prefix: String) -> String {
        let safe = topic.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"),
                 UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
        if safe && prefix.utf8.count + 1 + topic.utf8.count <= 63 { return prefix + ":" + topic }
        let digest = SHA256.hash(data: Array(topic.utf8))
        let hex = digest.prefix(20).map { byte in String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }
        return prefix + "#" + hex.joined()
    }

    /// The NOTIFY payload of `message` if it can go inline (text, no NUL, at most `limit` bytes in all).
    static func inlinePayload(_ message: BrokerMessage, limit: Int) -> String? {
        guard message.isText, !message.payload.readableBytesView.contains(0) else { return nil }
        let head = header("t", message)
        guard head.utf8.count + message.payload.readableBytes <= limit else { return nil }
        return head + String(buffer: message.payload)
    }

    /// The NOTIFY payload that points at row `id`, without the id (SQL appends it).
    static func referencePrefix(_ message: BrokerMessage) -> String {
        header("r", message)
    }

    private static func header(_ kind: String, _ message: BrokerMessage) -> String {
        "\(kind)\(message.origin)\(message.topic.utf8.count):\(message.topic)"
    }

    enum Parsed: Equatable {
        case inline(BrokerMessage)
        case reference(topic: String, origin: BrokerNodeID, row: Int64)
    }

    /// A notification's payload, or nil if it is not one of ours.
    static func parse(_ payload: String) -> Parsed? {
        let bytes = Array(payload.utf8)
        guard bytes.count >= 34, let origin = BrokerNodeID(hex: String(decoding: bytes[1..<33], as: UTF8.self)),
              let colon = bytes[33...].firstIndex(of: UInt8(ascii: ":")),
              let length = Int(String(decoding: bytes[33..<colon], as: UTF8.self)), length >= 0,
              colon + 1 + length <= bytes.count else { return nil }
        let topic = String(decoding: bytes[(colon + 1)..<(colon + 1 + length)], as: UTF8.self)
        let rest = bytes[(colon + 1 + length)...]
        switch bytes[0] {
        case UInt8(ascii: "t"):
            return .inline(BrokerMessage(topic: topic, origin: origin, isText: true, payload: ByteBuffer(bytes: rest)))
        case UInt8(ascii: "r"):
            guard let row = Int64(String(decoding: rest, as: UTF8.self)) else { return nil }
            return .reference(topic: topic, origin: origin, row: row)
        default:
            return nil
        }
    }
}
