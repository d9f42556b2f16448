/// A `ws://` or `wss://` URL, parsed and checked (RFC 6455 §3, RFC 3986 §3).
///
/// ```swift
/// let url = try WebSocketURL("wss://example.com:8443/chat?room=1")
/// url.host           // "example.com"
/// url.port           // 8443
/// url.requestTarget  // "/chat?room=1"
/// url.hostHeader     // "example.com:8443"
/// ```
///
/// What is accepted: the schemes `ws` and `wss` (any case), a host name, an IPv4 literal or an
/// IPv6 literal in brackets (`ws://[::1]:8080/`), an optional port (default 80 for `ws`, 443 for
/// `wss`), an optional path (default `/`) and query, and optional `user:password@` credentials
/// (sent as HTTP Basic authorization). Fragments (`#...`) are refused, as RFC 6455 requires.
/// Characters not allowed in a request target (spaces, non-ASCII) are percent-encoded.
public struct WebSocketURL: Sendable, Hashable, CustomStringConvertible {
    /// True for `wss` (TLS), false for `ws`.
    public var isSecure: Bool
    /// The host: a lowercased name, an IPv4 literal, or an IPv6 literal without its brackets.
    public var host: String
    /// The TCP port, explicit or the scheme's default.
    public var port: Int
    /// The path, starting with `/`, percent-encoded where needed.
    public var path: String
    /// The query (after `?`), if any, percent-encoded where needed.
    public var query: String?
    /// The user name of `user:password@`, percent-decoded.
    public var user: String?
    /// The password of `user:password@`, percent-decoded.
    public var password: String?

    /// Parses `string`.
    /// - Throws: ``WebSocketError/invalidURL(_:)`` saying what is wrong.
    public init(_ string: String) throws(WebSocketError) {
        let bytes = Array(string.utf8)
        guard let schemeEnd = URLSyntax.find(Array("://".utf8), in: bytes) else {
            throw .invalidURL("'\(string)' has no scheme; use ws://host/path or wss://host/path")
        }
        let scheme = String(decoding: bytes[..<schemeEnd], as: UTF8.self).lowercased()
        switch scheme {
        case "ws": isSecure = false
        case "wss": isSecure = true
        default: throw .invalidURL("scheme '\(scheme)' is not supported: use ws or wss")
        }
        let rest = bytes[(schemeEnd + 3)...]
        if rest.contains(UInt8(ascii: "#")) {
            throw .invalidURL("a WebSocket URL may not have a fragment ('#'): \(string)")
        }
        let authorityEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
        let authority = try Authority(rest[rest.startIndex..<authorityEnd], defaultPort: isSecure ? 443 : 80)
        host = authority.host
        port = authority.port
        user = authority.user
        password = authority.password
        let target = rest[authorityEnd...]
        if let questionMark = target.firstIndex(of: UInt8(ascii: "?")) {
            path = URLSyntax.percentEncode(target[target.startIndex..<questionMark])
            query = URLSyntax.percentEncode(target[(questionMark + 1)...])
        } else {
            path = URLSyntax.percentEncode(target)
            query = nil
        }
        if path.isEmpty { path = "/" }
    }

    /// Builds a URL from its parts (no parsing: the parts must already be valid).
    public init(secure: Bool, host: String, port: Int? = nil, path: String = "/", query: String? = nil) {
        self.isSecure = secure
        self.host = host
        self.port = port ?? (secure ? 443 : 80)
        self.path = path.isEmpty ? "/" : path
        self.query = query
    }

    /// `ws` or `wss`.
    public var scheme: String { isSecure ? "wss" : "ws" }
    /// Whether ``port`` is the scheme's default (80 for ws, 443 for wss).
    public var isDefaultPort: Bool { port == (isSecure ? 443 : 80) }
    /// Whether ``host`` is an IP literal (v4 or v6) rather than a name. IP literals get no SNI.
    public var isIPAddress: Bool { IPAddressBytes.parse(host) != nil }
    /// Whether ``host`` names this machine: `localhost`, `*.localhost`, 127.0.0.0/8 or `::1`.
    public var isLoopback: Bool { URLSyntax.isLoopback(host: host) }

    /// The HTTP request target: path and query, e.g. `/chat?room=1`.
    public var requestTarget: String { query.map { path + "?" + $0 } ?? path }
    /// The host as it appears in a URL or `Host` header: IPv6 literals in brackets.
    public var hostForURL: String { host.contains(":") ? "[\(host)]" : host }
    /// `host:port`, always with the port: the target of an HTTP `CONNECT`.
    public var authority: String { "\(hostForURL):\(port)" }
    /// The `Host` header's value: the host, with `:port` when it is not the scheme's default.
    public var hostHeader: String { isDefaultPort ? hostForURL : authority }

    /// The URL without credentials, e.g. `wss://example.com:8443/chat?room=1`.
    public var description: String { "\(scheme)://\(hostHeader)\(requestTarget)" }
}

/// The authority part of a URL: `[user[:password]@]host[:port]`.
struct Authority {
    var host: String
    var port: Int
    var user: String?
    var password: String?

    init(_ bytes: ArraySlice<UInt8>, defaultPort: Int) throws(WebSocketError) {
        var hostPort = bytes
        if let at = bytes.lastIndex(of: UInt8(ascii: "@")) {
            let userInfo = bytes[bytes.startIndex..<at]
            hostPort = bytes[(at + 1)...]
            if let colon = userInfo.firstIndex(of: UInt8(ascii: ":")) {
                user = URLSyntax.percentDecode(userInfo[userInfo.startIndex..<colon])
                password = URLSyntax.percentDecode(userInfo[(colon + 1)...])
            } else {
                user = URLSyntax.percentDecode(userInfo)
            }
        }
        guard !hostPort.isEmpty else { throw .invalidURL("the URL has no host") }
        var portPart: ArraySlice<UInt8>? = nil
        if hostPort.first == UInt8(ascii: "[") {
            guard let close = hostPort.firstIndex(of: UInt8(ascii: "]")) else {
                throw .invalidURL("unterminated IPv6 literal '\(String(decoding: hostPort, as: UTF8.self))'")
            }
            let literal = String(decoding: hostPort[(hostPort.startIndex + 1)..<close], as: UTF8.self)
            guard IPAddressBytes.parseIPv6(literal) != nil else {
                throw .invalidURL("'\(literal)' is not a valid IPv6 address")
            }
            host = literal.lowercased()
            let after = hostPort[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else {
                    throw .invalidURL("unexpected '\(String(decoding: after, as: UTF8.self))' after the IPv6 literal")
                }
                portPart = after.dropFirst()
            }
        } else {
            let colon = hostPort.firstIndex(of: UInt8(ascii: ":"))
            let name = hostPort[hostPort.startIndex..<(colon ?? hostPort.endIndex)]
            if let colon { portPart = hostPort[(colon + 1)...] }
            guard !name.isEmpty else { throw .invalidURL("the URL has no host") }
            guard name.allSatisfy(URLSyntax.isHostByte) else {
                throw .invalidURL("invalid character in host '\(String(decoding: name, as: UTF8.self))'")
            }
            host = String(decoding: name, as: UTF8.self).lowercased()
        }
        if let portPart, !portPart.isEmpty {
            guard portPart.count <= 5, portPart.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let value = Int(String(decoding: portPart, as: UTF8.self)), (1...65535).contains(value) else {
                throw .invalidURL("invalid port '\(String(decoding: portPart, as: UTF8.self))' (1-65535)")
            }
            port = value
        } else {
            port = defaultPort
        }
    }
}

/// Byte-level helpers of the URL syntax.
enum URLSyntax {
    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }

    /// Letters, digits and `-._~` (reg-name without percent-encoding or sub-delimiters).
    static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Bytes allowed as they are in a path or query: RFC 3986 pchar, `/`, `?` and `%` (escapes are kept).
    static func isTargetByte(_ byte: UInt8) -> Bool {
        if isHostByte(byte) { return true }
        return "!$&'()*+,;=:@/?%".utf8.contains(byte)
    }

    /// Percent-encodes every byte that may not appear in a request target as it is.
    static func percentEncode(_ bytes: ArraySlice<UInt8>) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for byte in bytes {
            if isTargetByte(byte) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes; malformed escapes are kept as they are.
    static func percentDecode(_ bytes: ArraySlice<UInt8>) -> String {
        func value(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        let input = Array(bytes)
        var out: [UInt8] = []
        var i = 0
        while i < input.count {
            if input[i] == UInt8(ascii: "%"), i + 2 < input.count, let high = value(input[i + 1]), let low = value(input[i + 2]) {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(input[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isLoopback(host: String) -> Bool {
        let name = host.lowercased()
        if name == "localhost" || name.hasSuffix(".localhost") { return true }
        guard let address = IPAddressBytes.parse(name) else { return false }
        if address.count == 4 { return address[0] == 127 }
        return address == [UInt8](repeating: 0, count: 15) + [1]
    }
}

/// IP literal parsing to bytes (4 for IPv4, 16 for IPv6).
enum IPAddressBytes {
    static func parse(_ string: String) -> [UInt8]? {
        parseIPv4(string) ?? parseIPv6(string)
    }

    /// Dotted-quad IPv4: four decimal numbers 0-255, no leading zeros beyond a lone 0.
    static func parseIPv4(_ string: String) -> [UInt8]? {
        let parts = string.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  !(part.count > 1 && part.first == "0"), let value = Int(part), value <= 255 else { return nil }
            out.append(UInt8(value))
        }
        return out
    }

    /// IPv6 (RFC 4291 §2.2): up to eight groups of 1-4 hex digits, at most one `::`, an optional
    /// trailing dotted-quad IPv4. Zone identifiers are not accepted.
    static func parseIPv6(_ string: String) -> [UInt8]? {
        guard string.contains(":") else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        let halves = string.splitAtDoubleColons()
        guard halves.count <= 2 else { return nil }
        let sawDoubleColon = halves.count == 2

        func groups(_ part: Substring, allowIPv4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            var result: [UInt16] = []
            for (index, piece) in pieces.enumerated() {
                if allowIPv4 && index == pieces.count - 1 && piece.contains(".") {
                    guard let v4 = parseIPv4(String(piece)) else { return nil }
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }

        if sawDoubleColon {
            guard let h = groups(halves[0], allowIPv4: false), let t = groups(halves[1], allowIPv4: true) else { return nil }
            head = h
            tail = t
            guard head.count + tail.count <= 7 else { return nil }
        } else {
            guard let all = groups(halves[0], allowIPv4: true), all.count == 8 else { return nil }
            head = all
        }
        let words = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        return words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

extension String {
    /// Splits at every `::` (an IPv6 literal has at most one, so more than two parts is invalid).
    fileprivate func splitAtDoubleColons() -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let range = rest.firstRange(of: "::") {
            parts.append(rest[rest.startIndex..<range.lowerBound])
            rest = rest[range.upperBound...]
        }
        parts.append(rest)
        return parts
    }
}
