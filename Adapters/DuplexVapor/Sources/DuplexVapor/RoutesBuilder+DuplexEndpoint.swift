@_exported import Duplex
import Vapor

extension RoutesBuilder {
    /// Mounts a Duplex endpoint at `path` of this app (or group): a `GET` route, behind the
    /// middleware of its group, that hands its upgrade requests to `upgrader`.
    ///
    /// ```swift
    /// let upgrader = DuplexUpgrader()
    /// app.lifecycle.use(upgrader)
    /// app.grouped(UserAuthenticator()).webSocket("chat", ":room", upgrader: upgrader, endpoint: WebSocketEndpoint { ws in
    ///     for try await message in ws.messages { try await ws.send(message) }
    /// })
    /// ```
    ///
    /// The upgrader decides each request as ``Duplex/WebSocketServer`` would (the handshake's rules
    /// and statuses, Origin, subprotocols, extensions, the endpoint's own `onUpgrade`). An accepted
    /// request is answered 101 through Vapor's own upgrade (its `Response.upgrader`), and the
    /// connection becomes the endpoint's; a refused one is answered with Duplex's status, header
    /// fields and body, as a Vapor `Response` back through the middleware. The endpoint sees the
    /// request with Vapor's path parameters in ``Duplex/RouteRequest/parameters`` and the route as
    /// registered (groups included, `/chat/:room`) in ``Duplex/RouteRequest/route``.
    ///
    /// - Parameters:
    ///   - path: the route's path components (`"chat", ":room"`).
    ///   - upgrader: the upgrader the connections belong to (topics, count, shutdown); one for the app.
    ///   - endpoint: the endpoint, as written for a ``Duplex/WebSocketRouter``.
    ///   - onUpgrade: a hook with the Vapor `Request` (what the middleware put there: `req.auth`,
    ///     `req.storage`), run before the endpoint's own `onUpgrade`. It may refuse; when it
    ///     accepts, the endpoint's hook (if any) decides next, its user data winning over this
    ///     one's, and the header fields of both go on the 101.
    /// - Returns: the route, as Vapor's `on(_:_:use:)` returns it.
    @discardableResult
    public func webSocket(_ path: PathComponent..., upgrader: DuplexUpgrader, endpoint: WebSocketEndpoint,
                          onUpgrade: (@Sendable (RouteRequest, Request) async -> UpgradeDecision)? = nil) -> Route {
        webSocket(path, upgrader: upgrader, endpoint: endpoint, onUpgrade: onUpgrade)
    }

    /// The variadic `webSocket(_:upgrader:endpoint:onUpgrade:)`, with the path components as an array.
    @discardableResult
    public func webSocket(_ path: [PathComponent], upgrader: DuplexUpgrader, endpoint: WebSocketEndpoint,
                          onUpgrade: (@Sendable (RouteRequest, Request) async -> UpgradeDecision)? = nil) -> Route {
        on(.GET, path) { request async -> Response in
            let routeRequest: RouteRequest
            do {
                routeRequest = try RouteRequest(request)
            } catch {
                return Response(RouteResponse.text("malformed HTTP request\n", status: .badRequest))
            }
            let bound = onUpgrade.map { hook in endpoint.precededByUpgradeHook { await hook($0, request) } } ?? endpoint
            switch await upgrader.decide(routeRequest, endpoint: bound, httpVersion: request.version, eventLoop: request.eventLoop) {
            case .refuse(let refusal):
                return Response(refusal)
            case .accept(let acceptance):
                let response = Response(status: .switchingProtocols)
                response.upgrader = DuplexProtocolSwitch(upgrader: upgrader, acceptance: acceptance)
                return response
            }
        }
    }
}
