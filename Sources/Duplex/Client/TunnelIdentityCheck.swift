import NIOCore
import NIOSSL
import NIOTLS

/// The server certificate did not name the host the client wanted (TLS through a proxy).
public struct TLSIdentityError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The host name or IP address the certificate had to name.
    public var expected: String
    /// The DNS names and IP addresses the certificate names.
    public var names: [String]

    /// Which host was expected and which names the certificate carries.
    public var description: String {
        "the server's certificate is not valid for \(expected)"
            + (names.isEmpty ? " (it names no host)" : " (it names \(names.joined(separator: ", ")))")
    }
}

/// Checks the server certificate's identity for TLS through a proxy tunnel.
///
/// NIOSSL checks a certificate against the host name and also against the IP address the
/// socket is connected to. Through a proxy that address is the proxy's, so a certificate for
/// the proxy's IP address would pass for any host. For tunnelled connections the client
/// therefore lets NIOSSL check the chain only (`noHostnameVerification`) and checks the name
/// here, against the target: its DNS name (wildcards in the leftmost label only) or its IP
/// address, in the certificate's subject alternative names.
///
/// It holds back `channelActive` from the handlers after it (the HTTP upgrade) until the TLS
/// handshake completed and the name matched, so no request leaves before; on a mismatch it
/// fires ``TLSIdentityError`` and closes.
final class TunnelIdentityCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any

    private let expected: String
    private var activeHeld = false
    private var done = false

    /// - Parameter expected: the host name or IP literal the certificate must name.
    init(expected: String) {
        self.expected = expected
    }

    func channelActive(context: ChannelHandlerContext) {
        activeHeld = true
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard !done, let tls = event as? TLSUserEvent, case .handshakeCompleted = tls else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        done = true
        let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
        guard let certificate, Self.certificate(certificate, names: expected) else {
            let names = certificate.map(Self.names(in:)) ?? []
            context.fireErrorCaught(TLSIdentityError(expected: expected, names: names))
            context.close(promise: nil)
            return
        }
        if activeHeld { context.fireChannelActive() }
        context.fireUserInboundEventTriggered(event)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Whether `certificate`'s subject alternative names include `host`: an IP address SAN equal
    /// to an IP literal, or a DNS SAN equal to the name (ASCII case-insensitive, trailing dot
    /// ignored) or a wildcard `*.rest` standing for exactly one leftmost label.
    static func certificate(_ certificate: NIOSSLCertificate, names host: String) -> Bool {
        if let address = IPAddressBytes.parse(host) {
            return certificate._subjectAlternativeNames().contains { name in
                name.nameType == .ipAddress && Array(name.contents) == address
            }
        }
        var wanted = host.lowercased()
        if wanted.hasSuffix(".") { wanted.removeLast() }
        return certificate._subjectAlternativeNames().contains { name in
            guard name.nameType == .dnsName else { return false }
            return dnsName(String(decoding: Array(name.contents), as: UTF8.self), matches: wanted)
        }
    }

    static func dnsName(_ pattern: String, matches host: String) -> Bool {
        var pattern = pattern.lowercased()
        if pattern.hasSuffix(".") { pattern.removeLast() }
        guard !pattern.isEmpty, !host.isEmpty else { return false }
        if pattern.hasPrefix("*.") {
            let suffix = pattern.dropFirst(1)  // ".rest"
            // The wildcard covers one label: non-empty, without dots; the rest has two labels at least.
            guard suffix.dropFirst().contains("."), host.hasSuffix(suffix) else { return false }
            let label = host.dropLast(suffix.count)
            return !label.isEmpty && !label.contains(".")
        }
        return !pattern.contains("*") && pattern == host
    }

    static func names(in certificate: NIOSSLCertificate) -> [String] {
        certificate._subjectAlternativeNames().compactMap { name in
            switch name.nameType {
            case .dnsName:
                return String(decoding: Array(name.contents), as: UTF8.self)
            case .ipAddress:
                let bytes = Array(name.contents)
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
}
