import DuplexCore
import HTTPTypes
import NIOCore
import NIOSSL

/// How a client opens its connections: what it offers in the handshake, TLS, proxy, timeouts,
/// and the settings of the connection once open.
///
/// ```swift
/// var configuration = WebSocketClientConfiguration()
/// configuration.subprotocols = ["chat.v2"]
/// configuration.headerFields[.authorization] = "Bearer \(token)"
/// configuration.tls.trustRoots = .file("/etc/ssl/my-ca.pem")
/// let ws = try await WebSocketConnection.connect(to: "wss://example.com/chat", configuration: configuration)
/// ```
public struct WebSocketClientConfiguration: Sendable {
    /// Settings of the open connection: limits, keepalive pings, idle and close timeouts,
    /// backpressure. The same type the server uses.
    public var webSocket: WebSocketConfiguration
    /// Subprotocols to offer (`Sec-WebSocket-Protocol`), most preferred first. The one the server
    /// chose is ``WebSocketConnection/subprotocol``; a server that picks one not offered fails the handshake.
    public var subprotocols: [String]
    /// Extra request header fields (authorization, cookies, ...). They cannot replace the
    /// handshake's own fields (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `-Version`,
    /// `-Extensions`). A URL's `user:password@` becomes an `Authorization: Basic` field unless
    /// one is here.
    public var headerFields: HTTPFields
    /// The `Origin` header, for servers that check it; nil sends none.
    public var origin: String?
    /// Extensions to offer, in order of preference. Default: permessage-deflate (RFC 7692) with
    /// zlib's defaults; `[]` turns compression off (see docs/compression.md).
    public var extensions: [any ClientExtensionNegotiator]
    /// Time from the start of ``WebSocketConnection/connect(to:configuration:group:logger:)-(String,_,_,_)`` to the open
    /// connection: TCP connect, proxy tunnel, TLS and HTTP upgrade together. Past it the attempt
    /// fails with ``WebSocketError/handshakeTimeout``. Default: 10 s.
    public var handshakeTimeout: TimeAmount
    /// TLS settings for `wss://` URLs.
    public var tls: TLS
    /// Whether and how to go through an HTTP proxy. Default: ``Proxy/environment``.
    public var proxy: Proxy
    /// Whether a `wss://` WebSocket may be a stream of a shared HTTP/2 connection (RFC 8441).
    /// Default: ``HTTP2Preference/never`` (HTTP/1.1 upgrades).
    public var http2: HTTP2Preference = .never

    /// A configuration; every setting has a default (see each property).
    public init(
        webSocket: WebSocketConfiguration = WebSocketConfiguration(),
        subprotocols: [String] = [],
        headerFields: HTTPFields = [:],
        origin: String? = nil,
        extensions: [any ClientExtensionNegotiator] = [PerMessageDeflate.ClientNegotiator()],
        handshakeTimeout: TimeAmount = .seconds(10),
        tls: TLS = TLS(),
        proxy: Proxy = .environment
    ) {
        self.webSocket = webSocket
        self.subprotocols = subprotocols
        self.headerFields = headerFields
        self.origin = origin
        self.extensions = extensions
        self.handshakeTimeout = handshakeTimeout
        self.tls = tls
        self.proxy = proxy
    }

    /// TLS settings of a client: which certificates to trust and how strictly.
    public struct TLS: Sendable {
        /// Where trusted CA certificates come from.
        public enum TrustRoots: Sendable, Hashable {
            /// The system's trust store. The default.
            case system
            /// A PEM file of one or more CA certificates (or a directory of PEM files). Only these
            /// are trusted, not the system's.
            case file(String)
            /// These certificates only.
            case certificates([NIOSSLCertificate])
        }

        /// Trusted CA certificates. Default: ``TrustRoots/system``.
        public var trustRoots: TrustRoots
        /// How the server's certificate is checked. Default: `.fullVerification` (chain and host
        /// name; through a proxy the name is checked against the target, see ``TLSIdentityError``).
        /// `.none` accepts any certificate, self-signed included: for development only, as anyone
        /// on the path can then read and change the traffic.
        public var certificateVerification: CertificateVerification
        /// The name sent in SNI and checked against the certificate; nil uses the URL's host
        /// (no SNI for IP literals: the certificate is then checked against the IP address).
        public var serverName: String?
        /// A client certificate chain and key, for servers that require mutual TLS.
        public var clientCertificate: (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey)?
        /// A complete NIOSSL configuration to use instead of the fields above (ALPN included).
        public var custom: TLSConfiguration?

        /// TLS settings: by default the system's trust store, full verification (chain and host name) and
        /// SNI from the URL's host; no client certificate.
        public init(
            trustRoots: TrustRoots = .system,
            certificateVerification: CertificateVerification = .fullVerification,
            serverName: String? = nil
        ) {
            self.trustRoots = trustRoots
            self.certificateVerification = certificateVerification
            self.serverName = serverName
        }

        /// Accepts any server certificate (`certificateVerification = .none`). Development only.
        public static var insecure: TLS { TLS(certificateVerification: .none) }

        /// The NIOSSL configuration: TLS 1.2 or later, ALPN `http/1.1`.
        public func makeTLSConfiguration() -> TLSConfiguration {
            if let custom { return custom }
            var configuration = TLSConfiguration.makeClientConfiguration()
            switch trustRoots {
            case .system: configuration.trustRoots = .default
            case .file(let path): configuration.trustRoots = .file(path)
            case .certificates(let certificates): configuration.trustRoots = .certificates(certificates)
            }
            configuration.certificateVerification = certificateVerification
            configuration.applicationProtocols = ["http/1.1"]
            if let clientCertificate {
                configuration.certificateChain = clientCertificate.chain.map { .certificate($0) }
                configuration.privateKey = .privateKey(clientCertificate.key)
            }
            return configuration
        }
    }

    /// Whether connections go through an HTTP proxy (an HTTP `CONNECT` tunnel).
    public enum Proxy: Sendable, Hashable {
        /// Connect directly.
        case none
        /// Use the proxy named by the environment, like curl: `http_proxy` / `HTTP_PROXY` for
        /// `ws://` URLs, `https_proxy` / `HTTPS_PROXY` for `wss://` (lowercase wins), except for
        /// hosts matched by `no_proxy` / `NO_PROXY` and for loopback hosts (`localhost`,
        /// 127.0.0.0/8, `::1`), which are always reached directly. The default.
        case environment
        /// Always use this proxy.
        case http(HTTPProxy)
    }
}
