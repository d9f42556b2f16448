import NIOSSL
import Testing
@testable import Duplex

/// What swift-certificates' `ServerIdentityPolicy` (RFC 6125) decides for TLS through a proxy,
/// through `ServerIdentity`, on certificates made by openssl.
@Suite struct ServerIdentityTests {
    /// The outcome of checking `hosts` against a certificate with `subjectAltName`.
    static func outcomes(subjectAltName: String?, hosts: [String]) async throws -> [String: ServerIdentity.Outcome] {
        let made = try await TestCertificate.make(subjectAltName: subjectAltName)
        defer { made.remove() }
        let certificate = try #require(try NIOSSLCertificate.fromPEMFile(made.certificatePath).first)
        var outcomes: [String: ServerIdentity.Outcome] = [:]
        for host in hosts { outcomes[host] = await ServerIdentity.check(certificate, names: host) }
        return outcomes
    }

    @Test func aWildcardStandsForOneLeftmostLabel() async throws {
        let accepted = ["api.example.test", "API.Example.Test", "api.example.test."]
        let refused = ["example.test", "a.b.example.test", "api.example.test.evil", "api.other.test"]
        let outcomes = try await Self.outcomes(subjectAltName: "DNS:*.example.test", hosts: accepted + refused)
        for host in accepted { #expect(outcomes[host] == ServerIdentity.Outcome(matches: true, names: ["*.example.test"]), "\(host)") }
        for host in refused { #expect(outcomes[host] == ServerIdentity.Outcome(matches: false, names: ["*.example.test"]), "\(host)") }
    }

    @Test func aWildcardOutsideTheLeftmostLabelMatchesNothing() async throws {
        let outcomes = try await Self.outcomes(subjectAltName: "DNS:api.*.test", hosts: ["api.example.test", "api.*.test"])
        #expect(outcomes["api.example.test"]?.matches == false)
        #expect(outcomes["api.*.test"]?.matches == false)
    }

    @Test func anIPAddressMatchesIPAddressNamesOnly() async throws {
        // A DNS name spelled like an address does not name the address.
        let dns = try await Self.outcomes(subjectAltName: "DNS:127.0.0.1", hosts: ["127.0.0.1"])
        #expect(dns["127.0.0.1"] == ServerIdentity.Outcome(matches: false, names: ["127.0.0.1"]))
        let ip = try await Self.outcomes(subjectAltName: "IP:127.0.0.1,IP:::1", hosts: ["127.0.0.1", "::1", "127.0.0.2", "localhost"])
        let names = ["127.0.0.1", "0:0:0:0:0:0:0:1"]
        #expect(ip["127.0.0.1"] == ServerIdentity.Outcome(matches: true, names: names))
        #expect(ip["::1"] == ServerIdentity.Outcome(matches: true, names: names))
        #expect(ip["127.0.0.2"] == ServerIdentity.Outcome(matches: false, names: names))
        #expect(ip["localhost"] == ServerIdentity.Outcome(matches: false, names: names))
    }

    /// RFC 6125 6.4.4: with no subject alternative names the common name is not a host name
    /// (X509's policy alone would still match it).
    @Test func aCommonNameWithoutAlternativeNamesNamesNoHost() async throws {
        let outcomes = try await Self.outcomes(subjectAltName: nil, hosts: ["localhost"])
        #expect(outcomes["localhost"] == ServerIdentity.Outcome(matches: false, names: []))
    }

    /// Names of other kinds count as names (the common name is still not used) but are not listed.
    @Test func otherKindsOfNamesAreNotListed() async throws {
        let outcomes = try await Self.outcomes(subjectAltName: "email:ops@example.test,DNS:a.example.test", hosts: ["localhost", "a.example.test"])
        #expect(outcomes["localhost"] == ServerIdentity.Outcome(matches: false, names: ["a.example.test"]))
        #expect(outcomes["a.example.test"] == ServerIdentity.Outcome(matches: true, names: ["a.example.test"]))
    }
}
