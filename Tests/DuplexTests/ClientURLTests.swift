import Duplex
import DuplexCore
import NIOCore
import Testing

/// URL parsing, proxy settings from the environment, and the reconnect backoff: pure rules.
@Suite struct ClientURLTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        var url: String
        var secure: Bool
        var host: String
        var port: Int
        var target: String
        var hostHeader: String
        var isIP = false
        var testDescription: String { url }
    }

    static let valid: [Valid] = [
        Valid(url: "ws://example.com", secure: false, host: "example.com", port: 80, target: "/", hostHeader: "example.com"),
        Valid(url: "wss://example.com", secure: true, host: "example.com", port: 443, target: "/", hostHeader: "example.com"),
        Valid(url: "ws://example.com/", secure: false, host: "example.com", port: 80, target: "/", hostHeader: "example.com"),
        Valid(url: "WSS://Example.COM/Chat", secure: true, host: "example.com", port: 443, target: "/Chat", hostHeader: "example.com"),
        Valid(url: "ws://example.com:80/x", secure: false, host: "example.com", port: 80, target: "/x", hostHeader: "example.com"),
        Valid(url: "wss://example.com:443/x", secure: true, host: "example.com", port: 443, target: "/x", hostHeader: "example.com"),
        Valid(url: "ws://example.com:443/x", secure: false, host: "example.com", port: 443, target: "/x", hostHeader: "example.com:443"),
        Valid(url: "wss://example.com:80/x", secure: true, host: "example.com", port: 80, target: "/x", hostHeader: "example.com:80"),
        Valid(url: "wss://host:8443/path?query", secure: true, host: "host", port: 8443, target: "/path?query", hostHeader: "host:8443"),
        Valid(url: "ws://h:1/a/b/c?x=1&y=2", secure: false, host: "h", port: 1, target: "/a/b/c?x=1&y=2", hostHeader: "h:1"),
        Valid(url: "ws://example.com?x=1", secure: false, host: "example.com", port: 80, target: "/?x=1", hostHeader: "example.com"),
        Valid(url: "ws://example.com/?", secure: false, host: "example.com", port: 80, target: "/?", hostHeader: "example.com"),
        Valid(url: "ws://example.com:/x", secure: false, host: "example.com", port: 80, target: "/x", hostHeader: "example.com"),
        Valid(url: "ws://127.0.0.1:8080/echo", secure: false, host: "127.0.0.1", port: 8080, target: "/echo",
              hostHeader: "127.0.0.1:8080", isIP: true),
        Valid(url: "ws://[::1]:8080/x", secure: false, host: "::1", port: 8080, target: "/x", hostHeader: "[::1]:8080", isIP: true),
        Valid(url: "wss://[::1]/x", secure: true, host: "::1", port: 443, target: "/x", hostHeader: "[::1]", isIP: true),
        Valid(url: "ws://[2001:DB8::A:1]:9000", secure: false, host: "2001:db8::a:1", port: 9000, target: "/",
              hostHeader: "[2001:db8::a:1]:9000", isIP: true),
        Valid(url: "ws://[::ffff:192.0.2.1]/", secure: false, host: "::ffff:192.0.2.1", port: 80, target: "/",
              hostHeader: "[::ffff:192.0.2.1]", isIP: true),
        Valid(url: "ws://[1:2:3:4:5:6:7:8]/", secure: false, host: "1:2:3:4:5:6:7:8", port: 80, target: "/",
              hostHeader: "[1:2:3:4:5:6:7:8]", isIP: true),
        Valid(url: "ws://my-host_1.example:65535/", secure: false, host: "my-host_1.example", port: 65535, target: "/",
              hostHeader: "my-host_1.example:65535"),
        // Characters a request target may not hold are percent-encoded; escapes stay as they are.
        Valid(url: "ws://h/a b/é?q=a b", secure: false, host: "h", port: 80, target: "/a%20b/%C3%A9?q=a%20b", hostHeader: "h"),
        Valid(url: "ws://h/%41?%zz", secure: false, host: "h", port: 80, target: "/%41?%zz", hostHeader: "h"),
        Valid(url: "ws://h/p?a=/b?c:@", secure: false, host: "h", port: 80, target: "/p?a=/b?c:@", hostHeader: "h"),
    ]

    @Test(arguments: valid)
    func parsesValidURL(_ case_: Valid) throws {
        let url = try WebSocketURL(case_.url)
        #expect(url.isSecure == case_.secure)
        #expect(url.scheme == (case_.secure ? "wss" : "ws"))
        #expect(url.host == case_.host)
        #expect(url.port == case_.port)
        #expect(url.requestTarget == case_.target)
        #expect(url.hostHeader == case_.hostHeader)
        #expect(url.isIPAddress == case_.isIP)
        // The description is the canonical form and parses back to the same URL.
        #expect(try WebSocketURL(url.description) == url)
    }

    static let invalid: [(String, String)] = [
        ("http://example.com/", "scheme 'http' is not supported"),
        ("https://example.com/", "scheme 'https' is not supported"),
        ("ftp://example.com/", "scheme 'ftp'"),
        ("example.com/chat", "has no scheme"),
        ("ws:/example.com", "has no scheme"),
        ("", "has no scheme"),
        ("ws://", "no host"),
        ("ws:///path", "no host"),
        ("ws://:8080/", "no host"),
        ("ws://example.com/#frag", "fragment"),
        ("ws://example.com:0/", "invalid port '0'"),
        ("ws://example.com:65536/", "invalid port '65536'"),
        ("ws://example.com:80a/", "invalid port '80a'"),
        ("ws://example.com:-1/", "invalid port '-1'"),
        ("ws://example.com:123456/", "invalid port"),
        ("ws://exa mple.com/", "invalid character in host"),
        ("ws://exa%6dple.com/", "invalid character in host"),
        ("ws://[::1/", "unterminated IPv6 literal"),
        ("ws://[::1]x/", "after the IPv6 literal"),
        ("ws://[1:2:3:4:5:6:7:8:9]/", "not a valid IPv6 address"),
        ("ws://[1::2::3]/", "not a valid IPv6 address"),
        ("ws://[12345::]/", "not a valid IPv6 address"),
        ("ws://[example.com]/", "not a valid IPv6 address"),
        ("ws://[::1%25eth0]/", "not a valid IPv6 address"),
        ("ws://[]/", "not a valid IPv6 address"),
    ]

    @Test(arguments: invalid)
    func refusesInvalidURL(_ url: String, _ reason: String) {
        do {
            let parsed = try WebSocketURL(url)
            Issue.record("'\(url)' parsed as \(parsed)")
        } catch {
            guard case .invalidURL(let message) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(message.contains(reason), "'\(message)' should mention '\(reason)'")
        }
    }

    @Test func credentialsAreParsedAndLeftOutOfTheDescription() throws {
        let url = try WebSocketURL("wss://al%20ice:p%40ss:w@example.com/x")
        #expect(url.user == "al ice")
        #expect(url.password == "p@ss:w")
        #expect(url.host == "example.com")
        #expect(url.description == "wss://example.com/x")
        let userOnly = try WebSocketURL("ws://bob@h/")
        #expect(userOnly.user == "bob")
        #expect(userOnly.password == nil)
    }

    @Test func loopbackHosts() throws {
        for url in ["ws://localhost/", "ws://LOCALHOST:1/", "ws://a.localhost/", "ws://127.0.0.1/", "ws://127.9.8.7/", "ws://[::1]/",
                    "ws://[0:0:0:0:0:0:0:1]/"] {
            #expect(try WebSocketURL(url).isLoopback, "\(url)")
        }
        for url in ["ws://example.com/", "ws://128.0.0.1/", "ws://[::2]/", "ws://localhost.example/", "ws://10.0.0.1/"] {
            #expect(try !WebSocketURL(url).isLoopback, "\(url)")
        }
    }

    @Test func invalidURLThrowsFromConnect() async throws {
        await #expect(throws: WebSocketError.invalidURL("scheme 'http' is not supported: use ws or wss")) {
            _ = try await WebSocketConnection.connect(to: "http://127.0.0.1:1/", configuration: loopbackClientConfiguration())
        }
    }

    // MARK: Proxy URLs and the environment

    @Test func proxyURLs() throws {
        let plain = try HTTPProxy(url: "http://proxy.example:3128")
        #expect(plain == HTTPProxy(host: "proxy.example", port: 3128))
        #expect(try HTTPProxy(url: "proxy.example:8080/") == HTTPProxy(host: "proxy.example", port: 8080))
        #expect(try HTTPProxy(url: "http://proxy.example") == HTTPProxy(host: "proxy.example", port: 80))
        #expect(try HTTPProxy(url: "http://[::1]:3128").description == "[::1]:3128")
        let withCredentials = try HTTPProxy(url: "http://user:pa%20ss@10.0.0.1:3128")
        // base64("user:pa ss")
        #expect(withCredentials == HTTPProxy(host: "10.0.0.1", port: 3128, authorization: "Basic dXNlcjpwYSBzcw=="))
        #expect(throws: WebSocketError.self) { try HTTPProxy(url: "https://proxy.example:3128") }
        #expect(throws: WebSocketError.self) { try HTTPProxy(url: "socks5://proxy.example:1080") }
        #expect(throws: WebSocketError.self) { try HTTPProxy(url: "http://proxy.example:3128/some/path") }
        #expect(throws: WebSocketError.self) { try HTTPProxy(url: "http://:3128") }
    }

    static func environment(_ variables: [String: String]) -> (String) -> String? {
        { variables[$0] }
    }

    @Test func proxyFromEnvironmentPicksTheVariableOfTheScheme() throws {
        let env = Self.environment(["http_proxy": "http://plain:1", "https_proxy": "http://secure:2"])
        #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL("ws://example.com/"), environment: env) == HTTPProxy(host: "plain", port: 1))
        #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL("wss://example.com/"), environment: env) == HTTPProxy(host: "secure", port: 2))
        // Upper case works too; lower case wins.
        let upper = Self.environment(["HTTP_PROXY": "http://upper:3", "HTTPS_PROXY": "upper:4"])
        #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL("ws://example.com/"), environment: upper) == HTTPProxy(host: "upper", port: 3))
        #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL("wss://example.com/"), environment: upper) == HTTPProxy(host: "upper", port: 4))
        let both = Self.environment(["HTTP_PROXY": "http://upper:3", "http_proxy": "http://lower:5"])
        #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL("ws://example.com/"), environment: both) == HTTPProxy(host: "lower", port: 5))
        // An empty variable counts as unset.
        let empty = Self.environment(["http_proxy": "", "HTTP_PROXY": "http://upper:3"])
        #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL("ws://example.com/"), environment: empty) == HTTPProxy(host: "upper", port: 3))
        #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL("wss://example.com/"), environment: Self.environment(["http_proxy": "http://p:1"])) == nil)
        #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL("ws://example.com/"), environment: Self.environment([:])) == nil)
    }

    @Test func proxyFromEnvironmentSkipsLoopback() throws {
        let env = Self.environment(["http_proxy": "http://p:1", "https_proxy": "http://p:1"])
        for url in ["ws://localhost:8080/", "ws://127.0.0.1/", "wss://[::1]:9/"] {
            #expect(try HTTPProxy.fromEnvironment(for: WebSocketURL(url), environment: env) == nil, "\(url)")
        }
    }

    @Test(arguments: [
        // (no_proxy, URL, bypassed)
        ("*", "ws://example.com/", true),
        ("example.com", "ws://example.com/", true),
        ("example.com", "ws://api.example.com/", true),
        ("example.com", "ws://notexample.com/", false),
        (".example.com", "ws://example.com/", true),
        (".example.com", "ws://a.b.example.com/", true),
        ("*.example.com", "ws://a.example.com/", true),
        ("EXAMPLE.com", "ws://Example.COM/", true),
        ("other.org, example.com", "ws://example.com/", true),
        ("other.org example.com", "ws://example.com/", true),
        ("other.org", "ws://example.com/", false),
        ("example.com:8080", "ws://example.com:8080/", true),
        ("example.com:8080", "ws://example.com:9090/", false),
        ("example.com:443", "wss://example.com/", true),
        ("10.1.2.3", "ws://10.1.2.3/", true),
        ("10.1.2.3", "ws://10.1.2.4/", false),
        ("10.0.0.0/8", "ws://10.200.3.4/", true),
        ("10.0.0.0/8", "ws://11.0.0.1/", false),
        ("192.168.1.0/24", "ws://192.168.1.77/", true),
        ("192.168.1.0/24", "ws://192.168.2.77/", false),
        ("fd00::/8", "ws://[fd12::1]/", true),
        ("fd00::/8", "ws://[fe12::1]/", false),
        ("2001:db8::1", "ws://[2001:db8::1]/", true),
        ("[2001:db8::1]:8080", "ws://[2001:db8::1]:8080/", true),
        ("[2001:db8::1]:8080", "ws://[2001:db8::1]:80/", false),
        ("", "ws://example.com/", false),
    ])
    func noProxy(_ list: String, _ url: String, _ bypassed: Bool) throws {
        let env = Self.environment(["http_proxy": "http://p:1", "https_proxy": "http://p:1", "no_proxy": list])
        let proxy = try HTTPProxy.fromEnvironment(for: WebSocketURL(url), environment: env)
        #expect((proxy == nil) == bypassed)
        // NO_PROXY in upper case is honoured too.
        let upper = Self.environment(["http_proxy": "http://p:1", "https_proxy": "http://p:1", "NO_PROXY": list])
        #expect((try HTTPProxy.fromEnvironment(for: WebSocketURL(url), environment: upper) == nil) == bypassed)
    }

    @Test func invalidProxyVariableIsAnError() throws {
        let env = Self.environment(["https_proxy": "socks5://p:1080"])
        do {
            _ = try HTTPProxy.fromEnvironment(for: WebSocketURL("wss://example.com/"), environment: env)
            Issue.record("a SOCKS proxy was accepted")
        } catch {
            guard case .invalidURL(let message) = error else { throw error }
            #expect(message.hasPrefix("https_proxy: "))
        }
    }

    // MARK: Backoff

    @Test func backoffGrowsToItsCap() {
        let policy = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(1), multiplier: 2, jitter: 0)
        let delays = (0..<8).map { policy.delay(attempt: $0) }
        #expect(delays == [100, 200, 400, 800, 1000, 1000, 1000, 1000].map { TimeAmount.milliseconds($0) })
        #expect(policy.baseDelay(attempt: 1_000_000) == .seconds(1))
    }

    @Test func jitterStaysWithinItsFraction() {
        let policy = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(10), jitter: 0.5)
        var distinct = Set<Int64>()
        for attempt in 0..<5 {
            let base = policy.baseDelay(attempt: attempt).nanoseconds
            for _ in 0..<50 {
                let delay = policy.delay(attempt: attempt).nanoseconds
                #expect(delay <= base && delay >= base / 2, "attempt \(attempt): \(delay) not in [\(base / 2), \(base)]")
                distinct.insert(delay)
            }
        }
        #expect(distinct.count > 100, "jitter should spread the delays")
    }

    @Test func defaultRetryRule() {
        let policy = ReconnectPolicy()
        #expect(!policy.shouldRetry(WebSocketError.invalidURL("x")))
        #expect(!policy.shouldRetry(CancellationError()))
        #expect(policy.shouldRetry(WebSocketError.handshakeTimeout))
        #expect(policy.shouldRetry(WebSocketError.handshakeFailed(.unexpectedStatus(503, [:]))))
    }
}
