import HTTPTypes
import NIOCore

/// A request as the server's ``WebSocketRouter`` matched it: the one request type applications
/// see, in HTTP route handlers, in an endpoint's upgrade hook and as ``WebSocketConnection/request``.
///
/// It carries swift-http-types' `HTTPRequest` (method, path with query, authority, header
/// fields) plus what the server knows around it: the path parameters of the matched route, the
/// body of a plain HTTP request, and the peer's address.
///
/// ```swift
/// router.get("/topics/:name") { request in
///     let name = request.parameters["name"]!                   // "news" for /topics/news?since=3
///     let token = request.headerFields[.authorization]
///     return .text("topic \(name), query \(request.query ?? "-")\n")
/// }
/// ```
public struct RouteRequest: Sendable {
    /// The request line and header fields. HTTP/1.1's `Host` field is `head.authority`.
    public var head: HTTPRequest
    /// The path parameters of the matched route: for a route registered as `/topics/:name`,
    /// `parameters["name"]` of a request for `/topics/news` is `"news"` (as it appears in the
    /// path, not percent-decoded). Empty for a route without parameters.
    public var parameters: [String: String]
    /// The route's path as registered, e.g. `/topics/:name`.
    public var route: String
    /// The request body, at most ``WebSocketServer/Configuration/maxRequestBodyBytes`` bytes.
    /// Empty for WebSocket upgrades and requests without a body.
    public var body: ByteBuffer
    /// The peer's address.
    public var remoteAddress: SocketAddress?

    /// A request, e.g. to call a route handler in a test.
    /// - Parameters:
    ///   - head: the request line and header fields.
    ///   - parameters: the matched route's path parameters; none by default.
    ///   - route: the route's path as registered; by default the request's path.
    ///   - body: the request body; empty by default.
    ///   - remoteAddress: the peer's address; none by default.
    public init(head: HTTPRequest, parameters: [String: String] = [:], route: String? = nil, body: ByteBuffer = ByteBuffer(),
                remoteAddress: SocketAddress? = nil) {
        self.head = head
        self.parameters = parameters
        self.body = body
        self.remoteAddress = remoteAddress
        self.route = route ?? ""
        if route == nil { self.route = path }
    }

    /// The request method.
    public var method: HTTPRequest.Method { head.method }
    /// The request's header fields.
    public var headerFields: HTTPFields { head.headerFields }
    /// The request target as sent, e.g. `/chat?room=1`.
    public var target: String { head.path ?? "/" }
    /// The path part of the target (before `?`), e.g. `/chat`.
    public var path: String {
        let target = self.target
        return target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
    }
    /// The query part of the target (after `?`), if any, e.g. `room=1`.
    public var query: String? {
        let target = self.target
        return target.firstIndex(of: "?").map { String(target[target.index(after: $0)...]) }
    }
}

/// The answer of a plain HTTP route. The server sets `Content-Length` and `Connection` itself.
public struct RouteResponse: Sendable {
    /// The status; `HTTPResponse.Status` takes integer literals (`404`) and named ones (`.notFound`).
    public var status: HTTPResponse.Status
    /// The header fields.
    public var headerFields: HTTPFields
    /// The body (not sent in answer to HEAD).
    public var body: ByteBuffer

    /// A response with a status, header fields and body.
    public init(status: HTTPResponse.Status = .ok, headerFields: HTTPFields = [:], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headerFields = headerFields
        self.body = body
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: HTTPResponse.Status = .ok) -> RouteResponse {
        RouteResponse(status: status, headerFields: [.contentType: "text/plain; charset=utf-8"], body: ByteBuffer(string: text))
    }

    /// A `text/html; charset=utf-8` response.
    public static func html(_ html: String, status: HTTPResponse.Status = .ok) -> RouteResponse {
        RouteResponse(status: status, headerFields: [.contentType: "text/html; charset=utf-8"], body: ByteBuffer(string: html))
    }
}

