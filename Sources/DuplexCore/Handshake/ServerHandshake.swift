import HTTPTypes

/// The server's side of the opening handshake (RFC 6455 §4.2), as pure functions on
/// swift-http-types' `HTTPRequest`.
///
/// An HTTP/1.1 request's `Host` field is the request's `authority` (as NIO's and every other
/// HTTPTypes bridge put it); a second `Host` field stays in `headerFields`.
public enum ServerHandshake {
    /// A request that passed ``validate(_:httpVersion:maxHeaderBytes:)``.
    public struct UpgradeRequest: Sendable, Hashable {
        /// The request as received.
        public var request: HTTPRequest
        /// The `Sec-WebSocket-Key`, trimmed; empty for an extended CONNECT (RFC 8441 has none).
        public var key: String
        /// The subprotocols the client offers, in its order of preference.
        public var subprotocols: [String]
        /// The extension offers, in the client's order.
        public var extensionOffers: [ExtensionOffer]
        /// The first `Origin` field, if any.
        public var origin: String? { request.headerFields[values: .origin].first }
        /// The `Host` value (the request's authority).
        public var host: String { request.authority ?? "" }
        /// Whether this is an HTTP/2 extended CONNECT (RFC 8441), answered `200` rather than `101`.
        public var isExtendedConnect: Bool { request.method == .connect }
    }

    /// Whether a request asks for a WebSocket upgrade at all (an `Upgrade: websocket` token);
    /// other requests are plain HTTP.
    public static func isUpgradeRequest(_ headerFields: HTTPFields) -> Bool {
        headerFields.containsToken("websocket", in: .upgrade)
    }

    /// Whether a request asks to switch to some protocol, WebSocket or another: an `Upgrade`
    /// field with a `Connection: upgrade` token, or CONNECT. After such a request an HTTP/1.1
    /// connection cannot be read as HTTP any more unless the switch happens (RFC 9110 §7.8).
    public static func asksToSwitchProtocols(_ request: HTTPRequest) -> Bool {
        request.method == .connect
            || (request.headerFields[.upgrade] != nil && request.headerFields.containsToken("upgrade", in: .connection))
    }

    /// Default limit of the request's header bytes: 16 KiB.
    public static let defaultMaxHeaderBytes = 16 * 1024

    /// Bytes the request's header block takes on the wire, `name: value\r\n` per field, the
    /// `Host` field (the request's authority) included: what `maxHeaderBytes` bounds.
    public static func headerBytes(_ request: HTTPRequest) -> Int {
        let host = request.authority.map { "Host".utf8.count + $0.utf8.count + 4 } ?? 0
        return host + request.headerFields.wireSize
    }

    /// Checks a request against RFC 6455 §4.2.1.
    /// - Parameters:
    ///   - request: the opening request, as received.
    ///   - httpVersion: the request's HTTP version (HTTPTypes' requests carry none); an upgrade
    ///     needs HTTP/1.1 or later.
    ///   - maxHeaderBytes: the largest ``headerBytes(_:)`` accepted (431 over it).
    /// - Returns: the upgrade request, or the error whose ``HandshakeError/status`` to answer with
    ///   (see ``rejection(for:)`` for the response's header fields).
    public static func validate(
        _ request: HTTPRequest,
        httpVersion: (major: Int, minor: Int) = (1, 1),
        maxHeaderBytes: Int = defaultMaxHeaderBytes
    ) -> Result<UpgradeRequest, HandshakeError> {
        let headers = request.headerFields
        let size = headerBytes(request)
        if size > maxHeaderBytes { return .failure(.headersTooLarge(size: size, limit: maxHeaderBytes)) }
        guard request.method == .get else { return .failure(.methodNotGet(request.method.rawValue)) }
        guard httpVersion.major > 1 || (httpVersion.major == 1 && httpVersion.minor >= 1) else {
            return .failure(.httpVersionTooOld("HTTP/\(httpVersion.major).\(httpVersion.minor)"))
        }
        guard let host = request.authority, !host.isEmpty, headers[values: .hostField].isEmpty else {
            return .failure(.missingHost)
        }
        guard headers.containsToken("websocket", in: .upgrade) else { return .failure(.missingUpgrade) }
        guard headers.containsToken("upgrade", in: .connection) else { return .failure(.missingConnectionUpgrade) }
        let keys = headers[values: .secWebSocketKey]
        guard keys.count == 1 else { return .failure(.invalidKey) }
        let key = keys[0].trimmingHTTPWhitespace()
        guard AcceptKey.isValidKey(key) else { return .failure(.invalidKey) }
        return validateWebSocketFields(request, key: key)
    }

    /// Checks an HTTP/2 extended CONNECT (RFC 8441 §4-5): method CONNECT with `:protocol websocket`,
    /// `:authority` and `:path`; then the same `Sec-WebSocket-Version`, `-Protocol` and `-Extensions`
    /// rules as ``validate(_:httpVersion:maxHeaderBytes:)`` (there is no key: the returned
    /// request's ``UpgradeRequest/key`` is empty, and ``accept(_:subprotocol:extensions:)``
    /// answers it with the fields of a `200`).
    public static func validateExtendedConnect(
        _ request: HTTPRequest,
        maxHeaderBytes: Int = defaultMaxHeaderBytes
    ) -> Result<UpgradeRequest, HandshakeError> {
        let size = headerBytes(request)
        if size > maxHeaderBytes { return .failure(.headersTooLarge(size: size, limit: maxHeaderBytes)) }
        guard request.method == .connect else { return .failure(.methodNotGet(request.method.rawValue)) }
        guard let proto = request.extendedConnectProtocol, proto.caseInsensitiveEquals("websocket") else {
            return .failure(.unsupportedProtocol(request.extendedConnectProtocol ?? ""))
        }
        guard let host = request.authority, !host.isEmpty else { return .failure(.missingHost) }
        guard request.path?.isEmpty == false else { return .failure(.missingPath) }
        return validateWebSocketFields(request, key: "")
    }

    /// The rules both handshakes share: version 13, token subprotocols, well-formed extension offers.
    private static func validateWebSocketFields(_ request: HTTPRequest, key: String) -> Result<UpgradeRequest, HandshakeError> {
        let headers = request.headerFields
        let versions = headers.elements(.secWebSocketVersion)
        guard !versions.isEmpty else { return .failure(.missingVersion) }
        guard versions == [protocolVersion] else { return .failure(.unsupportedVersion(versions.joined(separator: ", "))) }
        let subprotocols = headers.elements(.secWebSocketProtocol)
        guard subprotocols.allSatisfy(HTTPToken.isToken) else { return .failure(.malformedSubprotocols) }
        let offers: [ExtensionOffer]
        do {
            offers = try ExtensionOffer.parse(headers[values: .secWebSocketExtensions])
        } catch {
            return .failure(error)
        }
        return .success(UpgradeRequest(request: request, key: key, subprotocols: subprotocols, extensionOffers: offers))
    }

    /// The one WebSocket protocol version this server speaks (RFC 6455 §4.1).
    static let protocolVersion = "13"

    /// Extra header fields for the error response: `Sec-WebSocket-Version: 13` with a 426 (RFC 6455
    /// §4.4) or a 400 for a missing version, `Allow: GET` with a 405.
    public static func rejection(for error: HandshakeError) -> HTTPFields {
        switch error {
        case .unsupportedVersion, .missingVersion: [.secWebSocketVersion: protocolVersion]
        case .methodNotGet: [.allow: "GET"]
        default: [:]
        }
    }

    /// The headers of a 426 (Upgrade Required) answer to a plain HTTP request (no
    /// `Upgrade: websocket`, see ``isUpgradeRequest(_:)``) at a WebSocket endpoint:
    /// `Upgrade: websocket` (RFC 7231 §6.5.15: a 426 names the protocol to upgrade to) and
    /// `Sec-WebSocket-Version: 13`, the version ``rejection(for:)`` also names (RFC 6455 §4.4).
    public static let upgradeRequiredHeaders: HTTPFields = [
        .upgrade: "websocket",
        .secWebSocketVersion: protocolVersion,
    ]

    /// The outcome of accepting an upgrade: the 101 response's header fields and the extensions to run.
    public struct Acceptance {
        /// The header fields of the 101 (Switching Protocols) response.
        public var headerFields: HTTPFields
        /// The subprotocol chosen, if any.
        public var subprotocol: String?
        /// The negotiated extensions, in the order they apply to outgoing messages.
        public var extensions: [any WebSocketExtension]
    }

    /// Builds the 101 response (RFC 6455 §4.2.2), or the 200 of an extended CONNECT (RFC 8441 §5).
    /// - Parameters:
    ///   - upgrade: the validated request.
    ///   - subprotocol: the one subprotocol chosen from ``UpgradeRequest/subprotocols``, or nil.
    ///     A choice the client did not offer is a programming error.
    ///   - negotiators: the server's negotiators, in order of preference. Each may accept one of the
    ///     client's offers of its name; two extensions never share an RSV bit.
    public static func accept(
        _ upgrade: UpgradeRequest,
        subprotocol: String? = nil,
        extensions negotiators: [any ServerExtensionNegotiator] = []
    ) -> Acceptance {
        if let subprotocol {
            precondition(upgrade.subprotocols.contains(subprotocol), "subprotocol '\(subprotocol)' was not offered")
        }
        // An extended CONNECT (HTTP/2, RFC 8441) is answered 200 without the upgrade's own fields.
        var headers: HTTPFields = upgrade.isExtendedConnect ? [:] : [
            .upgrade: "websocket",
            .connection: "Upgrade",
            .secWebSocketAccept: AcceptKey.accept(forKey: upgrade.key),
        ]
        if let subprotocol { headers.append(HTTPField(name: .secWebSocketProtocol, value: subprotocol)) }
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
            headers.append(HTTPField(name: .secWebSocketExtensions, value: ExtensionOffer.serialize(accepted)))
        }
        return Acceptance(headerFields: headers, subprotocol: subprotocol, extensions: extensions)
    }
}
