/// The server certificate did not name the host the client wanted (TLS through a proxy).
public struct TLSIdentityError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The host name or IP address the certificate had to name.
    public var expected: String
    /// The DNS names and IP addresses the certificate names.
    public var names: [String]

    /// The expected host and the names the certificate has, for logs and error messages.
    public var description: String {
        "the server's certificate is not valid for \(expected)"
            + (names.isEmpty ? " (it names no host)" : " (it names \(names.joined(separator: ", ")))")
    }
}
