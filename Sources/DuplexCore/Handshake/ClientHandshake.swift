import HTTPTypes

/// The client's side of the opening handshake (RFC 6455 §4.1): make the request, check the answer.
public struct ClientHandshake: Sendable {
    /// The fresh random `Sec-WebSocket-Key` of this handshake.
    public let key: String
    /// The subprotocols offered, most preferred first.
    public let subprotocols: [String]
    /// The extensions offered, in order of preference.
    public let extensions: [any ClientExtensionNegotiator]
    /// The upgrade request: GET of `path`, the `Host` value as its authority (HTTP/1.1 bridges
    /// send it as the `Host` field, first), and the other header fields in order.
    public let request: HTTPRequest

    /// - Parameters:
    ///   - host: the `Host` value: the host, with `:port` when not the scheme's default.
    ///   - path: the request target: the path and query, e.g. `/chat?room=1`.
    ///   - subprotocols: subprotocols to offer, most preferred first.
    ///   - extensions: extensions to offer.
    ///   - origin: an `Origin` header, for servers that check it.
    ///   - extraHeaders: more fields (authorization, cookies). They may not replace the handshake's
    ///     own (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`, `-Version`, `-Extensions`, and
    ///     `-Protocol` when `subprotocols` is not empty).
    ///   - key: the key; a fresh random one by default (tests pass a fixed one).
    public init(
        host: String,
        path: String = "/",
        subprotocols: [String] = [],
        extensions: [any ClientExtensionNegotiator] = [],
        origin: String? = nil,
        extraHeaders: HTTPFields = [:],
        key: String = AcceptKey.randomKey()
    ) {
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions
        var headers: HTTPFields = [
            .upgrade: "websocket",
            .connection: "Upgrade",
            .secWebSocketKey: key,
            .secWebSocketVersion: "13",
        ]
        if !subprotocols.isEmpty {
            headers.append(HTTPField(name: .secWebSocketProtocol, value: subprotocols.joined(separator: ", ")))
        }
        let offers = extensions.flatMap { $0.offers() }
        if !offers.isEmpty { headers.append(HTTPField(name: .secWebSocketExtensions, value: ExtensionOffer.serialize(offers))) }
        if let origin { headers.append(HTTPField(name: .origin, value: origin)) }
        let reserved: [HTTPField.Name] = [.hostField, .upgrade, .connection, .secWebSocketKey, .secWebSocketVersion,
                                          .secWebSocketExtensions]
        for field in extraHeaders where !reserved.contains(field.name) {
            if field.name == .secWebSocketProtocol && !subprotocols.isEmpty { continue }
            headers.append(field)
        }
        self.request = HTTPRequest(method: .get, scheme: nil, authority: host, path: path, headerFields: headers)
    }

    /// The value of an `Authorization` (or `Proxy-Authorization`) field with HTTP Basic
    /// credentials (RFC 7617): `Basic ` and base64 of `user:password`.
    public static func basicAuthorization(user: String, password: String) -> String {
        "Basic " + Base64.encode(Array((user + ":" + password).utf8))
    }

    /// What a successful handshake agreed on.
    public struct Result {
        /// The subprotocol the server chose, if any.
        public var subprotocol: String?
        /// The extensions the server accepted, in the order of its response.
        public var extensions: [any WebSocketExtension]
    }

    /// Checks the server's response (RFC 6455 §4.1, steps 1-6 of the client's checks).
    public func validate(_ response: HTTPResponse) throws(HandshakeError) -> Result {
        let headers = response.headerFields
        guard response.status == .switchingProtocols else { throw HandshakeError.unexpectedStatus(response.status, headers) }
        guard headers.containsToken("websocket", in: .upgrade) else { throw HandshakeError.responseMissingUpgrade }
        guard headers.containsToken("upgrade", in: .connection) else { throw HandshakeError.responseMissingConnectionUpgrade }
        let expected = AcceptKey.accept(forKey: key)
        let accepts = headers[values: .secWebSocketAccept]
        guard accepts.count == 1, accepts[0].trimmingHTTPWhitespace() == expected else {
            throw HandshakeError.invalidAccept(expected: expected, received: accepts.first)
        }
        return try negotiated(headers)
    }

    /// This handshake as an HTTP/2 extended CONNECT (RFC 8441 §4-5): `:protocol websocket` with
    /// `scheme` (`https`, or `http` for h2c), the same authority, path and fields, without
    /// `Upgrade`, `Connection` and `Sec-WebSocket-Key` (HTTP/2 has no upgrade and no key).
    public func extendedConnectRequest(scheme: String) -> HTTPRequest {
        var fields = request.headerFields
        fields[.upgrade] = nil
        fields[.connection] = nil
        fields[.secWebSocketKey] = nil
        var connect = HTTPRequest(method: .connect, scheme: scheme, authority: request.authority, path: request.path,
                                  headerFields: fields)
        connect.extendedConnectProtocol = "websocket"
        return connect
    }

    /// Checks the server's answer to ``extendedConnectRequest(scheme:)``: a 200 (RFC 8441 §5), then the
    /// same subprotocol and extension checks as ``validate(_:)``.
    public func validateExtendedConnect(_ response: HTTPResponse) throws(HandshakeError) -> Result {
        guard response.status == .ok else { throw HandshakeError.unexpectedStatus(response.status, response.headerFields) }
        return try negotiated(response.headerFields)
    }

    /// The subprotocol and extensions a successful answer agreed on, checked against the offers.
    private func negotiated(_ headers: HTTPFields) throws(HandshakeError) -> Result {
        var subprotocol: String? = nil
        let chosen = headers.elements(.secWebSocketProtocol)
        if chosen.count > 1 { throw HandshakeError.unofferedSubprotocol(chosen.joined(separator: ", ")) }
        if let only = chosen.first {
            guard subprotocols.contains(only) else { throw HandshakeError.unofferedSubprotocol(only) }
            subprotocol = only
        }
        let responses = try ExtensionOffer.parse(headers[values: .secWebSocketExtensions])
        var made: [any WebSocketExtension] = []
        var seen: Set<String> = []
        var usedBits: ReservedBits = []
        for response in responses {
            let name = response.name.lowercased()
            guard let negotiator = extensions.first(where: { $0.name.caseInsensitiveEquals(name) }), !seen.contains(name) else {
                throw HandshakeError.unofferedExtension(response.name)
            }
            guard usedBits.isDisjoint(with: negotiator.reservedBits) else {
                throw HandshakeError.extensionRejected(name: response.name, reason: "RSV bits already in use")
            }
            seen.insert(name)
            usedBits.formUnion(negotiator.reservedBits)
            made.append(try negotiator.accept(response: response))
        }
        return Result(subprotocol: subprotocol, extensions: made)
    }
}
