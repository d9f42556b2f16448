/// A broker's URL, `scheme://[user[:password]@]host[:port][/path]`, parsed with the same rules
/// as ``WebSocketURL``'s authority; its ``description`` hides the password.
public struct BrokerURL: Sendable, Hashable, CustomStringConvertible {
    /// The scheme, lowercased (`redis`, `postgres`, ...).
    public var scheme: String
    /// The host: a lowercased name, an IPv4 literal, or an IPv6 literal without its brackets.
    public var host: String
    /// The port, explicit or `defaultPort`.
    public var port: Int
    /// The user name, percent-decoded.
    public var user: String?
    /// The password, percent-decoded. Never in ``description``.
    public var password: String?
    /// The path after the authority without its leading `/`, percent-decoded (empty if none).
    public var path: String

    /// Parses `string`, whose scheme must be one of `schemes`.
    /// - Throws: ``BrokerError`` saying what is wrong (without the password).
    public init(_ string: String, schemes: Set<String>, defaultPort: Int) throws(BrokerError) {
        let bytes = Array(string.utf8)
        guard let schemeEnd = URLSyntax.find(Array("://".utf8), in: bytes) else {
            throw BrokerError("the broker URL has no scheme: use \(schemes.sorted().map { "\($0)://" }.joined(separator: " or "))")
        }
        scheme = String(decoding: bytes[..<schemeEnd], as: UTF8.self).lowercased()
        guard schemes.contains(scheme) else {
            throw BrokerError("broker scheme '\(scheme)' is not supported here: use \(schemes.sorted().joined(separator: " or "))")
        }
        let rest = bytes[(schemeEnd + 3)...]
        if rest.contains(UInt8(ascii: "?")) || rest.contains(UInt8(ascii: "#")) {
            throw BrokerError("a broker URL takes no query or fragment")
        }
        let authorityEnd = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
        let authority: Authority
        do {
            authority = try Authority(rest[rest.startIndex..<authorityEnd], defaultPort: defaultPort)
        } catch {
            if case .invalidURL(let reason) = error { throw BrokerError("invalid broker URL: \(reason)") }
            throw BrokerError("invalid broker URL")
        }
        host = authority.host
        port = authority.port
        user = authority.user.flatMap { $0.isEmpty ? nil : $0 }
        password = authority.password
        path = authorityEnd < rest.endIndex ? URLSyntax.percentDecode(rest[(authorityEnd + 1)...]) : ""
    }

    /// `host:port`, IPv6 literals in brackets.
    public var authority: String { "\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// The URL with `***` for the password: what logs and `/healthz` show.
    public var description: String {
        let credentials = switch (user, password) {
        case (nil, nil): ""
        case (let user?, nil): "\(user)@"
        case (let user, _?): "\(user ?? ""):***@"
        }
        return "\(scheme)://\(credentials)\(authority)\(path.isEmpty ? "" : "/" + path)"
    }
}
