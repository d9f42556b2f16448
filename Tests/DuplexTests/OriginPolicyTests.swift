import Testing
@testable import Duplex

/// The Origin allowlist of WebSocket endpoints.
@Suite struct OriginPolicyTests {
    @Test func anyPermitsEverything() {
        #expect(OriginPolicy.any.permits("https://evil.example"))
        #expect(OriginPolicy.any.permits(nil))
    }

    @Test func exactMatchesCaseInsensitively() {
        let policy = OriginPolicy.allow([.exact("https://Example.com")])
        #expect(policy.permits("https://example.com"))
        #expect(!policy.permits("https://example.com.evil.net"))
        #expect(!policy.permits("http://example.com"))
    }

    @Test func wildcardMatchesSubdomainsOnly() {
        let policy = OriginPolicy.allow([.wildcard("https://*.example.com")])
        #expect(policy.permits("https://app.example.com"))
        #expect(policy.permits("https://a.b.example.com"))
        #expect(!policy.permits("https://example.com"))
        #expect(!policy.permits("https://app.example.com.evil.net"))
        #expect(!policy.permits("http://app.example.com"))
    }

    @Test func missingOriginFollowsRequireOrigin() {
        #expect(OriginPolicy.allow([.exact("https://example.com")]).permits(nil))
        #expect(!OriginPolicy.allow([.exact("https://example.com")], requireOrigin: true).permits(nil))
    }
}
