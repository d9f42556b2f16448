import NIOSSL

extension TLSConfiguration {
    /// A server configuration from PEM files: the certificate chain (leaf first) and its
    /// private key, with ALPN `h2` (preferred; unless `http2` is false) and `http/1.1`.
    public static func duplexServer(certificatePath: String, privateKeyPath: String, http2: Bool = true) throws -> TLSConfiguration {
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.applicationProtocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        return configuration
    }
}
