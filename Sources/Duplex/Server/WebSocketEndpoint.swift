import DuplexCore
import HTTPTypes
import NIOCore

/// What the upgrade hook decided about a WebSocket request.
///
/// ```swift
/// onUpgrade: { request in
///     guard let user = await sessions.user(for: request.headerFields[.cookie]) else {
///         return .reject(status: .unauthorized, reason: "log in first",
///                        headerFields: [.wwwAuthenticate: "Bearer realm=\"chat\""])
///     }
///     return .accept(userData: user, headerFields: [.setCookie: "seen=1; Path=/; HttpOnly"])
/// }
/// ```
public enum UpgradeDecision: Sendable {
    /// Accept, attaching data that the connection carries as ``WebSocketConnection/userData`` and adding
    /// `headerFields` to the 101 response (a `Set-Cookie`, say). Fields the handshake sets itself
    /// (`Upgrade`, `Connection`, `Sec-WebSocket-Accept`, `-Protocol`, `-Extensions`) and framing
    /// fields (`Content-Length`, `Transfer-Encoding`) are left out.
    case accept(userData: (any Sendable)? = nil, headerFields: HTTPFields = [:])
    /// Refuse with an HTTP status (e.g. 401, 403), a one-line reason (the body) and more header
    /// fields (a `WWW-Authenticate` with a 401, say); the connection closes after the answer.
    case reject(status: HTTPResponse.Status, reason: String, headerFields: HTTPFields = [:])
}

/// A WebSocket endpoint: who may connect, which subprotocols it speaks, and the application.
public struct WebSocketEndpoint: Sendable {
    /// Subprotocols this endpoint speaks. The server picks the first one in the client's list
    /// that is also here, or none (the connection still opens; the client decides).
    public var subprotocols: [String]
    /// Which browser origins may connect.
    public var origins: OriginPolicy
    /// Sees each upgrade request before it is accepted (with the path parameters of the matched
    /// endpoint); may refuse it, attach user data or add response header fields.
    public var onUpgrade: (@Sendable (RouteRequest) async -> UpgradeDecision)?
    /// Per-endpoint connection settings; nil uses the server's.
    public var configuration: WebSocketConfiguration?
    /// Extensions this endpoint negotiates, in order of preference. None by default: with
    /// permessage-deflate a connection holds 2-7x the memory (see docs/compression.md); add
    /// `PerMessageDeflate.ServerNegotiator()` to compress.
    public var extensions: [any ServerExtensionNegotiator]
    /// The HTTP fallback transports (SSE, long-polling) of this endpoint, for clients that cannot
    /// open a WebSocket: the same application serves them. On by default; `.disabled` turns them off.
    public var fallback = HTTPFallbackConfiguration()
    let application: WebSocketApplication

    /// An endpoint served by an async function, one task per connection. When the function
    /// returns, the connection is closed with 1000 (1011 if it throws).
    public init(
        subprotocols: [String] = [],
        origins: OriginPolicy = .any,
        configuration: WebSocketConfiguration? = nil,
        extensions: [any ServerExtensionNegotiator] = [],
        onUpgrade: (@Sendable (RouteRequest) async -> UpgradeDecision)? = nil,
        handler: @escaping @Sendable (WebSocketConnection) async throws -> Void
    ) {
        self.init(subprotocols: subprotocols, origins: origins, configuration: configuration, extensions: extensions,
                  onUpgrade: onUpgrade, application: .task(handler))
    }

    /// An endpoint served by callbacks on the event loop.
    public init(
        subprotocols: [String] = [],
        origins: OriginPolicy = .any,
        configuration: WebSocketConfiguration? = nil,
        extensions: [any ServerExtensionNegotiator] = [],
        onUpgrade: (@Sendable (RouteRequest) async -> UpgradeDecision)? = nil,
        callbacks: WebSocketCallbacks
    ) {
        self.init(subprotocols: subprotocols, origins: origins, configuration: configuration, extensions: extensions,
                  onUpgrade: onUpgrade, application: .callbacks(callbacks))
    }

    private init(subprotocols: [String], origins: OriginPolicy, configuration: WebSocketConfiguration?,
                 extensions: [any ServerExtensionNegotiator], onUpgrade: (@Sendable (RouteRequest) async -> UpgradeDecision)?,
                 application: WebSocketApplication) {
        self.subprotocols = subprotocols
        self.origins = origins
        self.configuration = configuration
        self.extensions = extensions
        self.onUpgrade = onUpgrade
        self.application = application
    }

    /// The subprotocol to answer with: the client's most preferred one that this endpoint speaks.
    func selectSubprotocol(from offered: [String]) -> String? {
        offered.first { subprotocols.contains($0) }
    }
}

/// Which `Origin` values may open a WebSocket (browsers send it; other clients usually don't).
public enum OriginPolicy: Sendable {
    /// Any origin, or none.
    case any
    /// Only these origins. Requests without an `Origin` header are accepted unless
    /// `requireOrigin` is true (non-browser clients rarely send one).
    case allow([OriginPattern], requireOrigin: Bool = false)

    func permits(_ origin: String?) -> Bool {
        switch self {
        case .any:
            return true
        case .allow(let patterns, let requireOrigin):
            guard let origin else { return !requireOrigin }
            return patterns.contains { $0.matches(origin) }
        }
    }
}

/// One allowed origin.
public enum OriginPattern: Sendable {
    /// Exactly this origin, compared case-insensitively (e.g. `https://example.com`).
    case exact(String)
    /// A pattern where `*` stands for any run of characters, e.g. `https://*.example.com`.
    case wildcard(String)

    func matches(_ origin: String) -> Bool {
        switch self {
        case .exact(let value):
            return value.lowercased() == origin.lowercased()
        case .wildcard(let pattern):
            return Self.glob(Array(pattern.lowercased().utf8)[...], Array(origin.lowercased().utf8)[...])
        }
    }

    private static func glob(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == UInt8(ascii: "*") {
            let rest = pattern.dropFirst()
            var t = text
            while true {
                if glob(rest, t) { return true }
                guard !t.isEmpty else { return false }
                t = t.dropFirst()
            }
        }
        guard let c = text.first, c == first else { return false }
        return glob(pattern.dropFirst(), text.dropFirst())
    }
}
