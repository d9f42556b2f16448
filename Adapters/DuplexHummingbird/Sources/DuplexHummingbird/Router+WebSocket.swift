@_exported import Duplex
import HTTPTypes
import Hummingbird
import NIOCore

extension RouterMethods {
    /// Mounts a Duplex endpoint at `path` of this router (or group): a `GET` route, behind the
    /// middleware added before it, that hands its upgrade requests to `upgrader`.
    ///
    /// ```swift
    /// let upgrader = DuplexUpgrader()
    /// let router = Router()
    /// router.add(middleware: LogRequestsMiddleware(.info))
    /// router.webSocket("/chat/:room", upgrader: upgrader, endpoint: WebSocketEndpoint { ws in
    ///     for try await message in ws.messages { try await ws.send(message) }
    /// })
    /// var app = Application(router: router, server: .duplexHTTP1())
    /// app.addServices(upgrader)
    /// try await app.runService()
    /// ```
    ///
    /// The upgrader decides each request as ``Duplex/WebSocketServer`` would (the handshake's rules
    /// and statuses, Origin, subprotocols, extensions, the endpoint's own `onUpgrade`); an accepted
    /// one becomes the endpoint's connection, a refused one is answered through the middleware
    /// and its connection closes. The endpoint sees the request with Hummingbird's path
    /// parameters in ``Duplex/RouteRequest/parameters`` and the full route as Hummingbird names it
    /// (groups included, parameters as `{room}`: `/chat/{room}`) in ``Duplex/RouteRequest/route``. Needs the server built by
    /// ``HummingbirdCore/HTTPServerBuilder/duplexHTTP1(configuration:)`` (another one is answered 500).
    ///
    /// - Parameters:
    ///   - upgrader: the upgrader the connections belong to (topics, count, shutdown); one for the app.
    ///   - endpoint: the endpoint, as written for a ``Duplex/WebSocketRouter``.
    ///   - onUpgrade: a hook with the request context (what the middleware put there: a user, say),
    ///     run before the endpoint's own `onUpgrade`. It may refuse; when it accepts, the
    ///     endpoint's hook (if any) decides next, its user data winning over this one's, and the
    ///     header fields of both go on the 101.
    @discardableResult
    public func webSocket(_ path: RouterPath, upgrader: DuplexUpgrader, endpoint: WebSocketEndpoint,
                          onUpgrade: (@Sendable (RouteRequest, Context) async -> UpgradeDecision)? = nil) -> Self {
        let registered = "\(path)"
        return get(path) { request, context -> Response in
            guard let connection = UpgradableConnection.current else {
                context.logger.error("a Duplex endpoint needs the server built with .duplexHTTP1()")
                return Response(status: .internalServerError)
            }
            var parameters: [String: String] = [:]
            for (name, value) in context.parameters { parameters[String(name)] = String(value) }
            let routeRequest = RouteRequest(head: request.head, parameters: parameters, route: context.endpointPath ?? registered,
                                            remoteAddress: connection.channel.remoteAddress)
            let bound = onUpgrade.map { hook in endpoint.precededByUpgradeHook { await hook($0, context) } } ?? endpoint
            let handlers = connection.httpHandlers
            let channel = connection.channel
            let result = try await channel.eventLoop.flatSubmit {
                upgrader.upgrade(routeRequest, endpoint: bound, channel: channel, removing: handlers.value)
            }.get()
            switch result {
            case .upgraded:
                // Duplex wrote the real 101; this one stops at the connection's UpgradeGuard.
                return Response(status: .switchingProtocols)
            case .refused(let refusal):
                return Response(status: refusal.status, headers: refusal.headerFields, body: ResponseBody(byteBuffer: refusal.body))
            case .closed:
                return Response(status: .badRequest)
            }
        }
    }
}
