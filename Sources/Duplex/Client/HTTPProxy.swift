import DuplexCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An HTTP proxy that opens tunnels with `CONNECT host:port` (RFC 9110 §9.3.6).
public struct HTTPProxy: Sendable, Hashable, CustomStringConvertible {
    /// The proxy's host name or IP address.
    public var host: String
    /// The proxy's TCP port.
    public var port: Int
    /// The `Proxy-Authorization` value sent with `CONNECT`, e.g. `Basic dXNlcjpwYXNz`; nil sends none.
    public var authorization: String?

    /// A proxy at `host:port`; `authorization` is sent as `Proxy-Authorization` with every `CONNECT`.
    public init(host: String, port: Int, authorization: String? = nil) {
        self.host = host
        self.port = port
        self.authorization = authorization
    }

    /// Parses a proxy URL as found in `http_proxy`: `http://[user:password@]host[:port][/]`.
    /// The scheme may be left out; the port defaults to 80. Credentials become Basic
    /// `Proxy-Authorization`.
    /// - Throws: ``WebSocketError/invalidURL(_:)`` for anything else (TLS to the proxy, SOCKS).
    public init(url string: String) throws(WebSocketError) {
        var rest = Substring(string)
        if let range = rest.firstRange(of: "://") {
            let scheme = rest[rest.startIndex..<range.lowerBound].lowercased()
            guard scheme == "http" else {
                throw .invalidURL("proxy '\(string)': only http:// proxies are supported, not \(scheme)://")
            }
            rest = rest[range.upperBound...]
        }
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...].allSatisfy({ $0 == "/" }) else {
                throw .invalidURL("proxy '\(string)': a proxy URL has no path")
            }
            rest = rest[rest.startIndex..<slash]
        }
        let authority = try Authority(Array(rest.utf8)[...], defaultPort: 80)
        host = authority.host
        port = authority.port
        if let user = authority.user {
            authorization = ClientHandshake.basicAuthorization(user: user, password: authority.password ?? "")
        }
    }

    /// `host:port`, IPv6 literals in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The proxy the environment names for `url`, or nil to connect directly (see
    /// ``WebSocketClientConfiguration/Proxy/environment``).
    /// - Parameters:
    ///   - url: the URL to connect to: its scheme picks the variable, its host is checked
    ///     against `no_proxy`.
    ///   - environment: looks a variable up; the process environment by default.
    /// - Throws: ``WebSocketError/invalidURL(_:)`` when the variable holds no usable proxy URL.
    public static func fromEnvironment(
        for url: WebSocketURL,
        environment: (String) -> String? = HTTPProxy.processEnvironment
    ) throws(WebSocketError) -> HTTPProxy? {
        let names = url.isSecure ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy", "HTTP_PROXY"]
        guard let name = names.first(where: { !(environment($0) ?? "").isEmpty }), let value = environment(name) else {
            return nil
        }
        if url.isLoopback { return nil }
        let noProxy = environment("no_proxy") ?? environment("NO_PROXY") ?? ""
        if NoProxy(noProxy).matches(host: url.host, port: url.port) { return nil }
        do {
            return try HTTPProxy(url: value)
        } catch {
            throw .invalidURL("\(name): \(error)")
        }
    }

    /// Reads a variable of the process environment.
    public static let processEnvironment: @Sendable (String) -> String? = { name in
        getenv(name).map { String(cString: $0) }
    }
}

/// A `no_proxy` list: comma- or space-separated entries, each one of
/// - `*`: every host;
/// - a domain, with or without a leading `.` or `*.`: that host and its subdomains;
/// - an IP address, or a CIDR block such as `10.0.0.0/8` or `fd00::/8`;
/// - any of these with `:port`, to match that port only (IPv6 in brackets: `[::1]:8080`).
struct NoProxy {
    enum Pattern {
        case all
        case domain(String, port: Int?)
        case network([UInt8], prefix: Int, port: Int?)
    }

    var patterns: [Pattern] = []

    init(_ list: String) {
        for rawEntry in list.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            var entry = rawEntry.lowercased()[...]
            if entry == "*" {
                patterns.append(.all)
                continue
            }
            var port: Int? = nil
            if entry.first == "[", let close = entry.firstIndex(of: "]") {
                let after = entry[entry.index(after: close)...]
                if after.first == ":" { port = Int(after.dropFirst()) }
                entry = entry[entry.index(after: entry.startIndex)..<close]
            } else if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
                port = Int(entry[entry.index(after: colon)...])
                entry = entry[entry.startIndex..<colon]
            }
            var prefix: Int? = nil
            if let slash = entry.firstIndex(of: "/") {
                prefix = Int(entry[entry.index(after: slash)...])
                entry = entry[entry.startIndex..<slash]
            }
            if let address = IPAddressBytes.parse(String(entry)) {
                let bits = address.count * 8
                patterns.append(.network(address, prefix: min(prefix ?? bits, bits), port: port))
                continue
            }
            while entry.hasPrefix("*") || entry.hasPrefix(".") { entry = entry.dropFirst() }
            if !entry.isEmpty { patterns.append(.domain(String(entry), port: port)) }
        }
    }

    func matches(host: String, port: Int) -> Bool {
        let host = host.lowercased()
        let address = IPAddressBytes.parse(host)
        return patterns.contains { pattern in
            switch pattern {
            case .all:
                return true
            case .domain(let domain, let wantedPort):
                if let wantedPort, wantedPort != port { return false }
                return host == domain || host.hasSuffix("." + domain)
            case .network(let network, let prefix, let wantedPort):
                if let wantedPort, wantedPort != port { return false }
                guard let address, address.count == network.count else { return false }
                return Self.sameNetwork(address, network, prefix: prefix)
            }
        }
    }

    static func sameNetwork(_ a: [UInt8], _ b: [UInt8], prefix: Int) -> Bool {
        var remaining = prefix
        for i in 0..<a.count where remaining > 0 {
            let bits = min(remaining, 8)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if a[i] & mask != b[i] & mask { return false }
            remaining -= bits
        }
        return true
    }
}
