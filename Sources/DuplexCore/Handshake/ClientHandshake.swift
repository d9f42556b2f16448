/// The client's side of the opening handshake (RFC 6455 §4.1): make the request, check the answer.
public struct ClientHandshake: Sendable {
    /// The fresh random `Sec-WebSocket-Key` of this handshake.
    public let key: String
    public let subprotocols: [String]
    public let extensions: [any ClientExtensionNegotiator]
    /// The request's header fields, in order.
    public let requestHeaders: HeaderList

    /// - Parameters:
    ///   - host: the `Host` value: the host, with `:port` when not the scheme's default.
    ///   - subprotocols: subprotocols to offer, most preferred first.
    ///   - extensions: extensions to offer.
    ///   - origin: an `Origin` header, for servers that check it.
    ///   - extraHeaders: more fields (authorization, cookies). They may not replace the handshake's own.
    ///   - key: the key; a fresh random one by default (tests pass a fixed one).
    public init(
        host: String,
        subprotocols: [String] = [],
        extensions: [any ClientExtensionNegotiator] = [],
        origin: String? = nil,
        extraHeaders: HeaderList = HeaderList(),
        key: String = AcceptKey.randomKey()
    ) {
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions
        var headers: HeaderList = [
            "Host": host,
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        ]
        if !subprotocols.isEmpty { headers.add(name: "Sec-WebSocket-Protocol", value: subprotocols.joined(separator: ", ")) }
        let offers = extensions.flatMap { $0.offers() }
        if !offers.isEmpty { headers.add(name: "Sec-WebSocket-Extensions", value: ExtensionOffer.serialize(offers)) }
        if let origin { headers.add(name: "Origin", value: origin) }
        let reserved = ["host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                        "sec-websocket-extensions"]
        for field in extraHeaders where !reserved.contains(field.name.lowercased()) {
            if field.name.caseInsensitiveEquals("Sec-WebSocket-Protocol") && !subprotocols.isEmpty { continue }
            headers.add(name: field.name, value: field.value)
        }
        self.requestHeaders = headers
    }

    /// What a successful handshake agreed on.
    public struct Result {
        public var subprotocol: String?
        public var extensions: [any WebSocketExtension]
    }

    /// Checks the server's response (RFC 6455 §4.1, steps 1-6 of the client's checks).
    public func validate(status: Int, headers: HeaderList) throws(HandshakeError) -> Result {
        guard status == 101 else { throw HandshakeError.unexpectedStatus(status, headers) }
        guard headers.containsToken("websocket", in: "Upgrade") else { throw HandshakeError.responseMissingUpgrade }
        guard headers.containsToken("upgrade", in: "Connection") else { throw HandshakeError.responseMissingConnectionUpgrade }
        let expected = AcceptKey.accept(forKey: key)
        let accepts = headers.values("Sec-WebSocket-Accept")
        guard accepts.count == 1, accepts[0].trimmingHTTPWhitespace() == expected else {
            throw HandshakeError.invalidAccept(expected: expected, received: accepts.first)
        }
        var subprotocol: String? = nil
        let chosen = headers.elements("Sec-WebSocket-Protocol")
        if chosen.count > 1 { throw HandshakeError.unofferedSubprotocol(chosen.joined(separator: ", ")) }
        if let only = chosen.first {
            guard subprotocols.contains(only) else { throw HandshakeError.unofferedSubprotocol(only) }
            subprotocol = only
        }
        let responses = try ExtensionOffer.parse(headers.values("Sec-WebSocket-Extensions"))
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
