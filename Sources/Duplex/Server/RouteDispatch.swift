import DuplexCore
import HTTPTypes
import Logging
import NIOCore

/// What the router says about a plain HTTP request, whichever HTTP version carried it.
enum RouteDispatch {
    /// A route handler answers (run it with ``ServerContext/answer(_:with:logger:)``); the request
    /// carries the matched route and its path parameters.
    case handler(RouteHandler, RouteRequest)
    /// The server answers itself: 405 with `Allow`, 404.
    case response(RouteResponse)
    /// No route, but a WebSocket endpoint at the path: an HTTP fallback request (HTTP/1.1 only,
    /// ``FallbackRequest``) or else this 426 answer.
    case webSocketEndpoint(upgradeRequired: RouteResponse)
}

extension ServerContext {
    /// The logger of one connection (or HTTP/2 stream), with its id.
    func logger(connectionID: UInt64) -> Logger {
        var logger = self.logger
        logger[metadataKey: "connection_id"] = "\(connectionID)"
        return logger
    }

    /// The route for a plain request, or the server's own answer when there is none.
    func dispatch(_ request: RouteRequest) -> RouteDispatch {
        let path = request.path
        switch router.route(request.method, path: path) {
        case .found(let handler, let route, let parameters):
            var request = request
            request.parameters = parameters
            request.route = route
            return .handler(handler, request)
        case .methodNotAllowed(let methods):
            var response = RouteResponse.text("method not allowed\n", status: .methodNotAllowed)
            response.headerFields[.allow] = methods.map(\.rawValue).joined(separator: ", ")
            return .response(response)
        case .notFound where router.webSocketEndpoint(for: path) != nil:
            var response = RouteResponse.text("this is a WebSocket endpoint: send Upgrade: websocket\n", status: .upgradeRequired)
            response.headerFields.append(contentsOf: ServerHandshake.upgradeRequiredHeaders)
            return .webSocketEndpoint(upgradeRequired: response)
        case .notFound:
            return .response(.text("not found\n", status: .notFound))
        }
    }

    /// Starts a route's handler in a task of its own (off the event loop; cancel the task when the
    /// connection closes first): the task, and its response on `eventLoop`.
    func startAnswer(_ request: RouteRequest, with handler: @escaping RouteHandler, connectionID: UInt64,
                     eventLoop: any EventLoop) -> (Task<Void, Never>, EventLoopFuture<RouteResponse>) {
        let logger = logger(connectionID: connectionID)
        let answer = eventLoop.makePromise(of: RouteResponse.self)
        let task = Task { answer.succeed(await Self.answer(request, with: handler, logger: logger)) }
        return (task, answer.futureResult)
    }

    /// Runs a route's handler: its response, or 500 (logged) if it throws.
    static func answer(_ request: RouteRequest, with handler: RouteHandler, logger: Logger) async -> RouteResponse {
        do {
            return try await handler(request)
        } catch {
            if Task.isCancelled {
                logger.debug("route cancelled: the connection closed", metadata: ["route": "\(request.route)"])
            } else {
                logger.error("route failed", metadata: ["route": "\(request.route)", "error": "\(error)"])
            }
            return .text("internal server error\n", status: .internalServerError)
        }
    }
}
