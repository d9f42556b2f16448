import NIOSSL
import SwiftASN1
import X509

/// Whether a server certificate names a host, decided by swift-certificates' `ServerIdentityPolicy`
/// (RFC 6125), for TLS through a proxy tunnel (see `TunnelIdentityCheck`).
///
/// NIOSSL has already verified the chain; this checks the leaf's name only. X509 checks a policy
/// through a `Verifier`, so the leaf is its own root here and the policy handles the leaf's critical
/// extensions (which NIOSSL checked). One rule is added to X509's: a certificate without subject
/// alternative names names no host (X509 would fall back to the common name, which RFC 6125
/// deprecates and browsers refuse).
enum ServerIdentity {
    /// The outcome of a check: whether `host` matched, and the DNS names and IP addresses the
    /// certificate names (for ``TLSIdentityError``).
    struct Outcome: Sendable, Equatable {
        var matches: Bool
        var names: [String]
    }

    /// Checks that `certificate` names `host`, a DNS name (ASCII case-insensitive, a trailing dot
    /// ignored, `*` in the leftmost label only) or an IP literal (matched against IP address
    /// names only).
    static func check(_ certificate: NIOSSLCertificate, names host: String) async -> Outcome {
        guard let leaf = try? Certificate(derEncoded: certificate.toDERBytes()),
            let alternativeNames = try? leaf.extensions.subjectAlternativeNames
        else {
            return Outcome(matches: false, names: [])
        }
        let names = alternativeNames.compactMap(Self.display)
        guard !alternativeNames.isEmpty else { return Outcome(matches: false, names: names) }
        let isIP = IPAddressBytes.parse(host) != nil
        let identity = ServerIdentityPolicy(serverHostname: isIP ? nil : host, serverIP: isIP ? host : nil)
        var verifier = Verifier(rootCertificates: CertificateStore([leaf])) {
            LeafNamePolicy(identity: identity, criticalExtensions: leaf.extensions.filter(\.critical).map(\.oid))
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
        if case .validCertificate = result { return Outcome(matches: true, names: names) }
        return Outcome(matches: false, names: names)
    }

    /// A DNS name as written, an IP address in dotted or colon-separated hex form; nil for other kinds.
    static func display(_ name: GeneralName) -> String? {
        switch name {
        case .dnsName(let dnsName):
            return dnsName
        case .ipAddress(let octets):
            let bytes = Array(octets.bytes)
            if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
            if bytes.count == 16 {
                return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                    .joined(separator: ":")
            }
            return nil
        default:
            return nil
        }
    }
}

/// `ServerIdentityPolicy` for a chain NIOSSL already verified: it claims the leaf's critical
/// extensions, which X509's `Verifier` would otherwise refuse as unhandled.
private struct LeafNamePolicy: VerifierPolicy {
    var identity: ServerIdentityPolicy
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier]

    init(identity: ServerIdentityPolicy, criticalExtensions: [ASN1ObjectIdentifier]) {
        self.identity = identity
        self.verifyingCriticalExtensions = criticalExtensions
    }

    mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult {
        identity.chainMeetsPolicyRequirements(chain: chain)
    }
}
