import DuplexCore
import NIOCore

/// Paths of a server: WebSocket endpoints and plain HTTP routes on the same port.
public struct Router: Sendable {
    var webSockets: [String: WebSocketEndpoint] = [:]
    var routes: [String: HTTPRoute] = [:]

    public init() {}

    /// Serves WebSocket connections at `path` (exact match, without the query).
    public mutating func webSocket(_ path: String, _ endpoint: WebSocketEndpoint) {
        webSockets[path] = endpoint
    }

    /// Serves plain HTTP GET (and HEAD) requests at `path`.
    public mutating func get(_ path: String, _ handler: @escaping HTTPRoute) {
        routes[path] = handler
    }
}

/// A plain HTTP handler: request in, response out. Runs on the event loop; keep it quick.
public typealias HTTPRoute = @Sendable (HTTPRequestInfo) -> HTTPResponse

/// A plain HTTP request as routes see it.
public struct HTTPRequestInfo: Sendable {
    public var method: String
    public var uri: String
    public var path: String
    public var query: String?
    public var headers: HeaderList
    public var remoteAddress: SocketAddress?
}

/// A plain HTTP response.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HeaderList
    public var body: ByteBuffer

    public init(status: Int, headers: HeaderList = HeaderList(), body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: ByteBuffer(string: text))
    }

    /// A `text/html; charset=utf-8` response.
    public static func html(_ html: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": "text/html; charset=utf-8"], body: ByteBuffer(string: html))
    }
}

/// What the upgrade hook decided about a WebSocket request.
public enum UpgradeDecision: Sendable {
    /// Accept, attaching data that the connection carries as ``WebSocket/userData``.
    case accept(userData: (any Sendable)? = nil)
    /// Refuse with an HTTP status (e.g. 401, 403) and a one-line reason.
    case reject(status: Int, reason: String)
}

/// A WebSocket endpoint: who may connect, which subprotocols it speaks, and the application.
public struct WebSocketEndpoint: Sendable {
    /// Subprotocols this endpoint speaks. The server picks the first one in the client's list
    /// that is also here, or none (the connection still opens; the client decides).
    public var subprotocols: [String]
    /// Which browser origins may connect.
    public var origins: OriginPolicy
    /// Sees each upgrade request before it is accepted; may refuse it or attach user data.
    public var onUpgrade: (@Sendable (WebSocketRequest) async -> UpgradeDecision)?
    /// Per-endpoint connection settings; nil uses the server's.
    public var configuration: WebSocketConfiguration?
    /// Extensions this endpoint negotiates, in order of preference. None by default: with
    /// permessage-deflate a connection holds 2-7x the memory (see docs/compression.md); add
    /// `PerMessageDeflate.ServerNegotiator()` to compress.
    public var extensions: [any ServerExtensionNegotiator]
    let application: WebSocketApplication

    /// An endpoint served by an async function, one task per connection. When the function
    /// returns, the connection is closed with 1000 (1011 if it throws).
    public init(
        subprotocols: [String] = [],
        origins: OriginPolicy = .any,
        configuration: WebSocketConfiguration? = nil,
        extensions: [any ServerExtensionNegotiator] = [],
        onUpgrade: (@Sendable (WebSocketRequest) async -> UpgradeDecision)? = nil,
        handler: @escaping @Sendable (WebSocket) async throws -> Void
    ) {
        self.subprotocols = subprotocols
        self.origins = origins
        self.configuration = configuration
        self.extensions = extensions
        self.onUpgrade = onUpgrade
        self.application = .task(handler)
    }

    /// An endpoint served by callbacks on the event loop.
    public init(
        subprotocols: [String] = [],
        origins: OriginPolicy = .any,
        configuration: WebSocketConfiguration? = nil,
        extensions: [any ServerExtensionNegotiator] = [],
        onUpgrade: (@Sendable (WebSocketRequest) async -> UpgradeDecision)? = nil,
        callbacks: WebSocketCallbacks
    ) {
        self.subprotocols = subprotocols
        self.origins = origins
        self.configuration = configuration
        self.extensions = extensions
        self.onUpgrade = onUpgrade
        self.application = .callbacks(callbacks)
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
