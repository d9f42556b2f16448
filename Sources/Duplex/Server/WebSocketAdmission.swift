import DuplexCore
import HTTPTypes
import NIOCore

/// Which transport carries a WebSocket: an HTTP/1.1 upgrade (its own TCP or TLS connection) or
/// an HTTP/2 stream opened by an extended CONNECT (RFC 8441), one of many on a connection.
public enum WebSocketTransportKind: String, Sendable, Hashable, CaseIterable {
    /// An HTTP/1.1 upgrade: one TCP (or TLS) connection per WebSocket.
    case http1 = "http/1.1"
    /// An HTTP/2 stream (RFC 8441).
    case h2
}

/// The server's decision on a WebSocket opening request, whichever HTTP version carried it:
/// the same endpoint lookup, handshake rules, Origin policy, subprotocol and extension choice
/// and `onUpgrade` hook for an HTTP/1.1 upgrade and for an HTTP/2 extended CONNECT.
enum WebSocketAdmission {
    /// Refuse with this status, one-line reason and header fields.
    case refuse(HTTPResponse.Status, reason: String, headerFields: HTTPFields)
    /// Accept: answer with ``AcceptedWebSocket/headerFields`` (in a 101 or a 200) and run the connection.
    case accept(AcceptedWebSocket)
}

extension WebSocketAdmission {
    /// The answer to a refused WebSocket request, whichever server writes it: the status, the
    /// reason as a one-line text body, and the refusal's header fields.
    static func refusalResponse(_ status: HTTPResponse.Status, reason: String, headerFields: HTTPFields) -> RouteResponse {
        var response = RouteResponse.text(reason + "\n", status: status)
        response.headerFields.append(contentsOf: headerFields)
        return response
    }
}

/// An accepted WebSocket request: what its answer carries and what its connection needs.
struct AcceptedWebSocket {
    let endpoint: WebSocketEndpoint
    /// The request with the matched route and its path parameters.
    let request: RouteRequest
    let subprotocol: String?
    /// The answer's header fields: the handshake's and the upgrade hook's.
    let headerFields: HTTPFields
    let extensions: [any WebSocketExtension]
    let userData: (any Sendable)?
    let settings: ConnectionSettings

    /// The driver of the accepted connection, counted under its transport.
    func makeDriver(server: ServerContext, opening: OpeningRequest, connectionID: UInt64, transport: WebSocketTransportKind,
                    eventLoop: any EventLoop) -> ConnectionDriver {
        server.countOpened(over: transport)
        let info = ConnectionInfo(connectionID: connectionID, subprotocol: subprotocol, openingRequest: opening, userData: userData)
        let connection = Connection(role: .server, configuration: settings.coreConfiguration, extensions: extensions)
        return ConnectionDriver(connection: connection, settings: settings, info: info, application: endpoint.application,
                                eventLoop: eventLoop, handlerExecutor: server.handlerExecutor(for: eventLoop))
    }
}

extension ServerContext {
    /// Fields of an upgrade hook's that the answer may not carry: the handshake's own and
    /// framing (a 101 has no body; a 200 to a CONNECT starts the stream's bytes).
    private static let handshakeOwnedFields: [HTTPField.Name] = [
        .upgrade, .connection, .secWebSocketAccept, .secWebSocketProtocol, .secWebSocketExtensions,
        .contentLength, .transferEncoding,
    ]

    /// Decides a WebSocket opening request to this server's router: endpoint (404), then
    /// ``admitWebSocket(_:to:settings:eventLoop:validate:decide:)`` for the endpoint matched.
    func admitWebSocket(_ request: RouteRequest, eventLoop: any EventLoop,
                        validate: (HTTPRequest, Int) -> Result<ServerHandshake.UpgradeRequest, HandshakeError>,
                        decide: @escaping (WebSocketAdmission) -> Void) {
        guard let match = router.webSocketEndpoint(for: request.path) else {
            serverMetrics.refused(status: HTTPResponse.Status.notFound.code)
            decide(.refuse(.notFound, reason: "no WebSocket endpoint at \(request.path)", headerFields: [:]))
            return
        }
        var wsRequest = request
        wsRequest.parameters = match.parameters
        wsRequest.route = match.route
        admitWebSocket(wsRequest, to: match.value, settings: endpointSettings[match.route]!, eventLoop: eventLoop,
                       validate: validate, decide: decide)
    }

    /// Decides a WebSocket opening request to an endpoint already found (by this server's router,
    /// or by a framework's: ``DuplexUpgrader``): the handshake's rules (`validate`, with their
    /// statuses), Origin (403), then the endpoint's `onUpgrade` hook. Calls `decide` on
    /// `eventLoop`: at once without a hook, after the hook's task with one.
    /// - Parameter request: the request with its route and path parameters set.
    func admitWebSocket(_ request: RouteRequest, to endpoint: WebSocketEndpoint, settings: ConnectionSettings,
                        eventLoop: any EventLoop,
                        validate: (HTTPRequest, Int) -> Result<ServerHandshake.UpgradeRequest, HandshakeError>,
                        decide decideUnmeasured: @escaping (WebSocketAdmission) -> Void) {
        // Measured here, for HTTP/1.1 upgrades, HTTP/2 extended CONNECTs and frameworks' upgrades
        // alike: every refusal by its status, and the time from the request to its acceptance
        // (the hook included).
        let started = NIODeadline.now()
        let metrics = serverMetrics
        let decide = { (admission: WebSocketAdmission) in
            switch admission {
            case .refuse(let status, _, _): metrics.refused(status: status.code)
            case .accept: metrics.upgraded(after: (NIODeadline.now() - started).nanoseconds)
            }
            decideUnmeasured(admission)
        }
        let upgrade: ServerHandshake.UpgradeRequest
        switch validate(request.head, configuration.maxHandshakeHeaderBytes) {
        case .failure(let error):
            decide(.refuse(error.status, reason: error.description, headerFields: ServerHandshake.rejection(for: error)))
            return
        case .success(let value):
            upgrade = value
        }
        guard endpoint.origins.permits(upgrade.origin) else {
            decide(.refuse(.forbidden, reason: "origin not allowed", headerFields: [:]))
            return
        }
        guard let hook = endpoint.onUpgrade else {
            decide(.accept(accepted(upgrade, endpoint: endpoint, request: request, settings: settings, userData: nil,
                                    headerFields: [:])))
            return
        }
        let decision = eventLoop.makeFutureWithTask { [request] in await hook(request) }
        decision.assumeIsolated().whenSuccess { [self] decision in
            switch decision {
            case .accept(let userData, let headerFields):
                decide(.accept(accepted(upgrade, endpoint: endpoint, request: request, settings: settings,
                                        userData: userData, headerFields: headerFields)))
            case .reject(let status, let reason, let headerFields):
                decide(.refuse(status, reason: reason, headerFields: headerFields))
            }
        }
    }

    private func accepted(_ upgrade: ServerHandshake.UpgradeRequest, endpoint: WebSocketEndpoint, request: RouteRequest,
                          settings: ConnectionSettings, userData: (any Sendable)?, headerFields: HTTPFields) -> AcceptedWebSocket {
        let subprotocol = endpoint.selectSubprotocol(from: upgrade.subprotocols)
        let acceptance = ServerHandshake.accept(upgrade, subprotocol: subprotocol, extensions: endpoint.extensions)
        var fields = acceptance.headerFields
        fields.append(contentsOf: headerFields.filter { !Self.handshakeOwnedFields.contains($0.name) })
        return AcceptedWebSocket(endpoint: endpoint, request: request, subprotocol: subprotocol, headerFields: fields,
                                 extensions: acceptance.extensions, userData: userData, settings: settings)
    }
}
