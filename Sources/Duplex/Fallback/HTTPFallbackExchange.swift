import DuplexCore
import HTTPTypes
import NIOCore
import NIOHTTP1

/// How a fallback request is answered: an HTTP response, or an SSE stream on its connection.
enum FallbackOutcome: Sendable {
    case response(RouteResponse)
    case stream(EventStreamTarget)
}

/// An SSE stream to start on a connection.
struct EventStreamTarget: Sendable {
    let session: NIOLoopBound<HTTPSession>
    let lastEventID: UInt64?
    /// The stream opened the session: its first event names it.
    let announce: Bool
    /// Fields an upgrade hook added.
    let headerFields: HTTPFields
}

/// Answers the fallback requests of a server's WebSocket endpoints (see ``FallbackRequest``):
/// opens sessions through the endpoint's origin policy and upgrade hook, and hands the others
/// to their session's loop. Every answer completes on some loop; the caller hops back to its own.
struct HTTPFallbackExchange {
    let server: ServerContext
    let eventLoop: any EventLoop
    let secure: Bool

    func answer(_ fallback: FallbackRequest, request: RouteRequest, nioHead: HTTPRequestHead,
                endpoint match: PathTable<WebSocketEndpoint>.Match) -> EventLoopFuture<FallbackOutcome> {
        switch fallback.kind {
        case .open(let transport):
            return open(transport, stream: false, request: request, nioHead: nioHead, endpoint: match)
        case .openStream:
            return open(.eventStream, stream: true, request: request, nioHead: nioHead, endpoint: match)
        case .events(let id):
            guard let session = server.sessions.lookup(id) else { return respond(Self.noSession) }
            let path = request.path, lastEventID = fallback.lastEventID
            return session.eventLoop.flatSubmit {
                let value = session.value
                guard value.path == path else { return session.eventLoop.makeSucceededFuture(.response(Self.noSession)) }
                switch value.state.transport {
                case .eventStream:
                    return session.eventLoop.makeSucceededFuture(
                        .stream(EventStreamTarget(session: session, lastEventID: lastEventID, announce: false, headerFields: [:])))
                case .longPolling:
                    return value.poll(lastEventID: lastEventID).map { .response($0) }
                }
            }
        case .upstream(let id):
            guard let session = server.sessions.lookup(id) else { return respond(Self.noSession) }
            let limit = (match.value.configuration ?? server.configuration.webSocket).limits.maxMessageSize
            let events: [EventStreamFormat.UpstreamEvent]
            do {
                events = try EventStreamFormat.parseUpstream(request.body, maxMessageSize: limit)
            } catch .messageTooLarge(let limit) {
                return respond(.text("a message over \(limit) bytes\n", status: .contentTooLarge))
            } catch {
                return respond(.text("\(error)\n", status: .badRequest))
            }
            let path = request.path
            return session.eventLoop.flatSubmit {
                guard session.value.path == path else { return session.eventLoop.makeSucceededFuture(.response(Self.noSession)) }
                return session.value.post(events).map { .response($0) }
            }
        }
    }

    private static let noSession = RouteResponse.text("no such session (unknown or expired)\n", status: .notFound)

    private func respond(_ response: RouteResponse) -> EventLoopFuture<FallbackOutcome> {
        eventLoop.makeSucceededFuture(.response(response))
    }

    private func open(_ transport: FallbackTransport, stream: Bool, request: RouteRequest, nioHead: HTTPRequestHead,
                      endpoint match: PathTable<WebSocketEndpoint>.Match) -> EventLoopFuture<FallbackOutcome> {
        let endpoint = match.value
        guard endpoint.fallback.allows(transport) else {
            return respond(.text("this endpoint serves no \(transport.rawValue) fallback\n", status: .notFound))
        }
        guard endpoint.origins.permits(request.headerFields[.origin]) else {
            return respond(.text("origin not allowed\n", status: .forbidden))
        }
        var opening = request
        opening.parameters = match.parameters
        opening.route = match.route
        let openingRequest = opening
        let decision: EventLoopFuture<UpgradeDecision>
        if let hook = endpoint.onUpgrade {
            decision = eventLoop.makeFutureWithTask { await hook(openingRequest) }
        } else {
            decision = eventLoop.makeSucceededFuture(.accept())
        }
        let exchange = self
        return decision.map { decision in
            switch decision {
            case .reject(let status, let reason, let headerFields):
                var response = RouteResponse.text(reason + "\n", status: status)
                response.headerFields.append(contentsOf: headerFields)
                return .response(response)
            case .accept(let userData, let headerFields):
                guard let session = exchange.makeSession(transport, request: openingRequest, nioHead: nioHead, endpoint: endpoint,
                                                         userData: userData) else {
                    return .response(.text("too many sessions\n", status: .serviceUnavailable))
                }
                let bound = NIOLoopBound(session, eventLoop: exchange.eventLoop)
                if stream {
                    return .stream(EventStreamTarget(session: bound, lastEventID: nil, announce: true, headerFields: headerFields))
                }
                let configuration = endpoint.fallback
                let ms = { (time: TimeAmount) in time.nanoseconds / 1_000_000 }
                var response = RouteResponse(headerFields: [.contentType: "application/json", .cacheControl: "no-store"],
                                             body: ByteBuffer(string: #"{"session":"\#(session.state.id)","transport":"\#(transport.rawValue)","#
                                                 + #""heartbeatInterval":\#(ms(configuration.heartbeatInterval)),"pollTimeout":\#(ms(configuration.pollTimeout)),"#
                                                 + #""sessionTimeout":\#(ms(configuration.sessionTimeout))}"#))
                response.headerFields.append(contentsOf: headerFields)
                return .response(response)
            }
        }
    }

    /// A new session on this loop, its connection started (the application's `onOpen` runs);
    /// nil when the server holds its most sessions.
    private func makeSession(_ transport: FallbackTransport, request: RouteRequest, nioHead: HTTPRequestHead,
                             endpoint: WebSocketEndpoint, userData: (any Sendable)?) -> HTTPSession? {
        let configuration = endpoint.fallback
        let now = Connection.Instant(nanoseconds: eventLoop.now.uptimeNanoseconds)
        let state = FallbackSession(id: SessionID.make(), transport: transport, configuration: configuration, at: now)
        let session = HTTPSession(state: state, path: request.path, eventLoop: eventLoop, table: server.sessions)
        guard server.sessions.insert(session, limit: configuration.maxSessions) else { return nil }
        let settings = server.endpointSettings[request.route]!
        let opening = OpeningRequest(head: nioHead, secure: secure, parameters: request.parameters, route: request.route,
                                     remoteAddress: request.remoteAddress)
        let info = ConnectionInfo(connectionID: server.nextConnectionID(), openingRequest: opening, userData: userData)
        let driver = ConnectionDriver(connection: Connection(role: .server, configuration: settings.coreConfiguration),
                                      settings: settings, info: info, application: endpoint.application,
                                      eventLoop: eventLoop, handlerExecutor: server.handlerExecutor(for: eventLoop))
        session.start(driver: driver)
        return session
    }
}
