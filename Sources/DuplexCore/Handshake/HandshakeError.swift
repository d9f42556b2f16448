import HTTPTypes

/// Why an opening handshake failed, on either side.
public enum HandshakeError: Error, Sendable, Hashable, CustomStringConvertible {
    // Server side: a request that is not a valid upgrade.
    /// An upgrade request with a method other than GET (the method given); answered 405.
    case methodNotGet(String)
    /// An upgrade request over HTTP/1.0 or older (the version given).
    case httpVersionTooOld(String)
    /// No `Host` field, or more than one.
    case missingHost
    /// No `Upgrade: websocket` field.
    case missingUpgrade
    /// No `upgrade` token in the `Connection` field.
    case missingConnectionUpgrade
    /// `Sec-WebSocket-Key` missing, repeated, or not the base64 form of 16 bytes.
    case invalidKey
    /// No `Sec-WebSocket-Version` field.
    case missingVersion
    /// A `Sec-WebSocket-Version` other than 13 (the value given); answered 426 with `Sec-WebSocket-Version: 13`.
    case unsupportedVersion(String)
    /// The request's header block is `size` bytes, over `limit`; answered 431.
    case headersTooLarge(size: Int, limit: Int)
    /// A `Sec-WebSocket-Extensions` value that does not parse (the reason given).
    case malformedExtensions(String)
    /// A `Sec-WebSocket-Protocol` value that is not a comma-separated list of tokens.
    case malformedSubprotocols
    /// An HTTP/2 extended CONNECT whose `:protocol` is not `websocket` (RFC 8441).
    case unsupportedProtocol(String)
    /// An HTTP/2 extended CONNECT without `:path`.
    case missingPath

    // Client side: a response that does not complete the handshake.
    /// The server did not answer 101; its status and header fields are attached.
    case unexpectedStatus(HTTPResponse.Status, HTTPFields)
    /// The 101 has no `Upgrade: websocket` field.
    case responseMissingUpgrade
    /// The 101 has no `upgrade` token in its `Connection` field.
    case responseMissingConnectionUpgrade
    /// `Sec-WebSocket-Accept` is not the value the key calls for (`expected`); `received` nil when missing.
    case invalidAccept(expected: String, received: String?)
    /// The server chose a subprotocol the client did not offer (the one given).
    case unofferedSubprotocol(String)
    /// The server accepted an extension the client did not offer (its name given).
    case unofferedExtension(String)
    /// The server's answer for an offered extension breaks that extension's rules (see ``ClientExtensionNegotiator/accept(response:)``).
    case extensionRejected(name: String, reason: String)

    /// The HTTP status a server answers with for this error: 405 for a method other than GET,
    /// 426 for an unsupported `Sec-WebSocket-Version`, 431 for oversized headers, 400 otherwise.
    public var status: HTTPResponse.Status {
        switch self {
        case .methodNotGet: .methodNotAllowed
        case .unsupportedVersion: .upgradeRequired
        case .headersTooLarge: .requestHeaderFieldsTooLarge
        case .unsupportedProtocol: .notImplemented
        default: .badRequest
        }
    }

    /// A one-line reason, what a server sends as the body of its refusal (e.g. `missing or repeated Host header`).
    public var description: String {
        switch self {
        case .methodNotGet(let m): "WebSocket upgrade requires GET, not \(m)"
        case .httpVersionTooOld(let v): "WebSocket upgrade requires HTTP/1.1 or later, not \(v)"
        case .missingHost: "missing or repeated Host header"
        case .missingUpgrade: "missing Upgrade: websocket"
        case .missingConnectionUpgrade: "missing Connection: Upgrade"
        case .invalidKey: "Sec-WebSocket-Key must be one base64-encoded 16-byte value"
        case .missingVersion: "missing Sec-WebSocket-Version"
        case .unsupportedVersion(let v): "unsupported Sec-WebSocket-Version \(v); this server speaks 13"
        case .headersTooLarge(let size, let limit): "request headers of \(size) bytes exceed the limit of \(limit)"
        case .malformedExtensions(let v): "malformed Sec-WebSocket-Extensions: \(v)"
        case .malformedSubprotocols: "malformed Sec-WebSocket-Protocol"
        case .unsupportedProtocol(let p): "extended CONNECT for protocol '\(p)'; this server speaks websocket"
        case .missingPath: "extended CONNECT without :path"
        case .unexpectedStatus(let status, _): "server answered \(status.code) instead of 101 Switching Protocols"
        case .responseMissingUpgrade: "response lacks Upgrade: websocket"
        case .responseMissingConnectionUpgrade: "response lacks Connection: Upgrade"
        case .invalidAccept(let expected, let received):
            "Sec-WebSocket-Accept is \(received.map { "'\($0)'" } ?? "missing"), expected '\(expected)'"
        case .unofferedSubprotocol(let p): "server chose subprotocol '\(p)', which was not offered"
        case .unofferedExtension(let e): "server accepted extension '\(e)', which was not offered"
        case .extensionRejected(let name, let reason): "extension \(name): \(reason)"
        }
    }
}
