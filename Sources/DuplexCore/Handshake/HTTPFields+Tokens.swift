import HTTPTypes

extension HTTPFields {
    /// The comma-separated elements of every `name` field, trimmed, empty ones dropped (RFC 9110 §5.6.1).
    func elements(_ name: HTTPField.Name) -> [String] {
        self[values: name].flatMap { value in
            value.split(separator: ",").map { $0.trimmingHTTPWhitespace() }.filter { !$0.isEmpty }
        }
    }

    /// Whether a comma-separated `name` field contains `token` (ASCII case-insensitive).
    func containsToken(_ token: String, in name: HTTPField.Name) -> Bool {
        elements(name).contains { $0.caseInsensitiveEquals(token) }
    }

    /// Bytes the fields take on the wire (`name: value\r\n` each).
    var wireSize: Int { reduce(0) { $0 + $1.name.rawName.utf8.count + $1.value.utf8.count + 4 } }
}

extension StringProtocol {
    /// ASCII case-insensitive comparison, as HTTP field names and tokens need.
    func caseInsensitiveEquals<Other: StringProtocol>(_ other: Other) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in
            x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
        }
    }

    func trimmingHTTPWhitespace() -> String {
        let bytes = Array(utf8)
        var start = 0, end = bytes.count
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}

extension HTTPField.Name {
    /// `Host` as a field name (swift-http-types marks `.host` unavailable: it is the request's
    /// authority; a second `Host` field of an HTTP/1.1 request still lands in `headerFields`).
    static let hostField = HTTPField.Name("Host")!
}
