import DuplexCore
import HTTPTypes
import Logging
import NIOHTTP1
import NIOHTTPTypesHTTP1
import NIOCore

/// What every connection of one endpoint (server) or of one `connect` call (client) shares,
/// held once and referenced by each connection instead of copied into it.
final class ConnectionSettings: Sendable {
    let role: Role
    let configuration: WebSocketConfiguration
    let coreConfiguration: Connection.Configuration
    let metrics: WebSocketMetrics
    /// The logger without per-connection metadata: a connection adds its `connection_id` only
    /// when it logs (a metadata dictionary per idle connection costs more than half a kilobyte).
    let logger: Logger
    /// Where a server runs its async handlers; nil for clients.
    let scope: HandlerScope?
    /// The server's count of open WebSockets; nil for clients.
    let live: LiveConnectionCounter?
    /// The server's topics; nil for clients.
    let topics: TopicRegistry?

    init(role: Role, configuration: WebSocketConfiguration, metrics: WebSocketMetrics, logger: Logger,
         scope: HandlerScope? = nil, live: LiveConnectionCounter? = nil, topics: TopicRegistry? = nil) {
        self.role = role
        self.configuration = configuration
        self.coreConfiguration = configuration.core
        self.metrics = metrics
        self.logger = logger
        self.scope = scope
        self.live = live
        self.topics = topics
    }

    /// The logger of one connection, with its id.
    func logger(connectionID: UInt64) -> Logger {
        guard role == .server else { return logger }
        var logger = self.logger
        logger[metadataKey: "connection_id"] = "\(connectionID)"
        return logger
    }
}

/// What a connection knows about how it was opened.
struct ConnectionInfo: Sendable {
    init(connectionID: UInt64, subprotocol: String? = nil, openingRequest: OpeningRequest? = nil, userData: (any Sendable)? = nil) {
        self.connectionID = connectionID
        self.subprotocol = subprotocol
        self.openingRequest = openingRequest
        self.userData = userData
    }

    var connectionID: UInt64
    var subprotocol: String?
    /// The request that opened the connection (server side), as read; made into a
    /// ``RouteRequest`` only when asked for.
    var openingRequest: OpeningRequest?
    /// The HTTP request that opened the connection (server side).
    var request: RouteRequest? { openingRequest?.routeRequest() }
    var userData: (any Sendable)?
}

/// The request that opened a server connection, kept as NIO decoded it (its header block as
/// name/value strings) rather than as an `HTTPRequest`, whose fields cost about twice as much
/// per idle connection; ``routeRequest()`` converts it when the application asks for it.
struct OpeningRequest: Sendable {
    /// How the request was read: NIO's HTTP/1 head (kept as it is, converted when asked for),
    /// or one already an `HTTPRequest` (an HTTP/2 stream's, or one a framework handed to a
    /// ``DuplexUpgrader``).
    enum Head: Sendable {
        case http1(HTTPRequestHead, secure: Bool)
        case converted(HTTPRequest)
    }

    var head: Head
    var parameters: [String: String]
    var route: String
    var remoteAddress: SocketAddress?

    init(head: HTTPRequestHead, secure: Bool, parameters: [String: String], route: String, remoteAddress: SocketAddress?) {
        self.init(request: .http1(head, secure: secure), parameters: parameters, route: route, remoteAddress: remoteAddress)
    }

    init(request: Head, parameters: [String: String], route: String, remoteAddress: SocketAddress?) {
        self.head = request
        self.parameters = parameters
        self.route = route
        self.remoteAddress = remoteAddress
    }

    func routeRequest() -> RouteRequest? {
        let request: HTTPRequest
        switch head {
        case .http1(let head, let secure):
            guard let converted = try? HTTPRequest(head, secure: secure, splitCookie: false) else { return nil }
            request = converted
        case .converted(let head):
            request = head
        }
        var routeRequest = RouteRequest(head: request, remoteAddress: remoteAddress)
        routeRequest.parameters = parameters
        routeRequest.route = route
        return routeRequest
    }
}
