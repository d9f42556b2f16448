/// The server's side of the opening handshake (RFC 6455 §4.2), as pure functions.
public enum ServerHandshake {
    /// An HTTP request as the handshake sees it.
    public struct Request: Sendable, Hashable {
        public var method: String
        /// The request target, e.g. `/chat?room=1`.
        public var uri: String
        public var versionMajor: Int
        public var versionMinor: Int
        public var headers: HeaderList

        public init(method: String, uri: String, versionMajor: Int = 1, versionMinor: Int = 1, headers: HeaderList) {
            self.method = method
            self.uri = uri
            self.versionMajor = versionMajor
            self.versionMinor = versionMinor
            self.headers = headers
        }

        /// The path part of ``uri``.
        public var path: String { String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]) }
        /// The query part of ``uri`` (after `?`), if any.
        public var query: String? {
            let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.count > 1 ? String(parts[1]) : nil
        }
    }

    /// A request that passed ``validate(_:maxHeaderBytes:)``.
    public struct UpgradeRequest: Sendable, Hashable {
        public var request: Request
        public var key: String
        /// The subprotocols the client offers, in its order of preference.
        public var subprotocols: [String]
        /// The extension offers, in the client's order.
        public var extensionOffers: [ExtensionOffer]
        public var origin: String? { request.headers.first("Origin") }
        public var host: String { request.headers.first("Host") ?? "" }
    }

    /// Whether a request asks for a WebSocket upgrade at all (an `Upgrade: websocket` token);
    /// other requests are plain HTTP.
    public static func isUpgradeRequest(_ headers: HeaderList) -> Bool {
        headers.containsToken("websocket", in: "Upgrade")
    }

    /// Default limit of the request's header bytes: 16 KiB.
    public static let defaultMaxHeaderBytes = 16 * 1024

    /// Checks a request against RFC 6455 §4.2.1.
    /// - Returns: the upgrade request, or the error whose ``HandshakeError/status`` to answer with
    ///   (see ``rejection(for:)`` for the response headers).
    public static func validate(_ request: Request, maxHeaderBytes: Int = defaultMaxHeaderBytes) -> Result<UpgradeRequest, HandshakeError> {
        let headers = request.headers
        let size = headers.wireSize
        if size > maxHeaderBytes { return .failure(.headersTooLarge(size: size, limit: maxHeaderBytes)) }
        guard request.method == "GET" else { return .failure(.methodNotGet(request.method)) }
        guard request.versionMajor > 1 || (request.versionMajor == 1 && request.versionMinor >= 1) else {
            return .failure(.httpVersionTooOld("HTTP/\(request.versionMajor).\(request.versionMinor)"))
        }
        let hosts = headers.values("Host")
        guard hosts.count == 1, !hosts[0].isEmpty else { return .failure(.missingHost) }
        guard headers.containsToken("websocket", in: "Upgrade") else { return .failure(.missingUpgrade) }
        guard headers.containsToken("upgrade", in: "Connection") else { return .failure(.missingConnectionUpgrade) }
        let keys = headers.values("Sec-WebSocket-Key")
        guard keys.count == 1 else { return .failure(.invalidKey) }
        let key = keys[0].trimmingHTTPWhitespace()
        guard AcceptKey.isValidKey(key) else { return .failure(.invalidKey) }
        let versions = headers.elements("Sec-WebSocket-Version")
        guard !versions.isEmpty else { return .failure(.missingVersion) }
        guard versions == [protocolVersion] else { return .failure(.unsupportedVersion(versions.joined(separator: ", "))) }
        let subprotocols = headers.elements("Sec-WebSocket-Protocol")
        guard subprotocols.allSatisfy(HTTPToken.isToken) else { return .failure(.malformedSubprotocols) }
        let offers: [ExtensionOffer]
        do {
            offers = try ExtensionOffer.parse(headers.values("Sec-WebSocket-Extensions"))
        } catch {
            return .failure(error)
        }
        return .success(UpgradeRequest(request: request, key: key, subprotocols: subprotocols, extensionOffers: offers))
    }

    /// The one WebSocket protocol version this server speaks (RFC 6455 §4.1).
    static let protocolVersion = "13"

    /// Extra headers for the error response: `Sec-WebSocket-Version: 13` with a 426 (RFC 6455 §4.4),
    /// `Allow: GET` with a 405.
    public static func rejection(for error: HandshakeError) -> HeaderList {
        switch error {
        case .unsupportedVersion, .missingVersion: ["Sec-WebSocket-Version": protocolVersion]
        case .methodNotGet: ["Allow": "GET"]
        default: HeaderList()
        }
    }

    /// The headers of a 426 (Upgrade Required) answer to a plain HTTP request (no
    /// `Upgrade: websocket`, see ``isUpgradeRequest(_:)``) at a WebSocket endpoint:
    /// `Upgrade: websocket` (RFC 7231 §6.5.15: a 426 names the protocol to upgrade to) and
    /// `Sec-WebSocket-Version: 13`, the version ``rejection(for:)`` also names (RFC 6455 §4.4).
    public static let upgradeRequiredHeaders: HeaderList = [
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": protocolVersion,
    ]

    /// The outcome of accepting an upgrade: the 101 response's headers and the extensions to run.
    public struct Acceptance {
        public var headers: HeaderList
        public var subprotocol: String?
        public var extensions: [any WebSocketExtension]
    }

    /// Builds the 101 response (RFC 6455 §4.2.2).
    /// - Parameters:
    ///   - subprotocol: the one subprotocol chosen from ``UpgradeRequest/subprotocols``, or nil.
    ///     A choice the client did not offer is a programming error.
    ///   - extensions: the server's negotiators, in order of preference. Each may accept one of the
    ///     client's offers of its name; two extensions never share an RSV bit.
    public static func accept(
        _ upgrade: UpgradeRequest,
        subprotocol: String? = nil,
        extensions negotiators: [any ServerExtensionNegotiator] = []
    ) -> Acceptance {
        if let subprotocol {
            precondition(upgrade.subprotocols.contains(subprotocol), "subprotocol '\(subprotocol)' was not offered")
        }
        var headers: HeaderList = [
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": AcceptKey.accept(forKey: upgrade.key),
        ]
        if let subprotocol { headers.add(name: "Sec-WebSocket-Protocol", value: subprotocol) }
        var accepted: [ExtensionOffer] = []
        var extensions: [any WebSocketExtension] = []
        var usedBits: ReservedBits = []
        for negotiator in negotiators where usedBits.isDisjoint(with: negotiator.reservedBits) {
            let offers = upgrade.extensionOffers.filter { $0.name.caseInsensitiveEquals(negotiator.name) }
            guard !offers.isEmpty, let (response, ext) = negotiator.accept(offers: offers) else { continue }
            accepted.append(response)
            extensions.append(ext)
            usedBits.formUnion(negotiator.reservedBits)
        }
        if !accepted.isEmpty {
            headers.add(name: "Sec-WebSocket-Extensions", value: ExtensionOffer.serialize(accepted))
        }
        return Acceptance(headers: headers, subprotocol: subprotocol, extensions: extensions)
    }
}
