import DuplexCore
import HTTPTypes
import NIOCore
import NIOHTTP1

/// The upgrade in two steps, for a framework that writes the 101 itself and then hands over a
/// channel that carries bytes (Vapor's `Upgrader`): ``decide(_:endpoint:httpVersion:eventLoop:)``
/// decides the request with the same rules as `upgrade(_:endpoint:httpVersion:channel:removing:)`
/// and returns the 101's header fields; once the framework has written that 101 and removed its
/// HTTP handlers, ``takeOver(_:channel:)`` runs the endpoint on the channel.
extension DuplexUpgrader {
    /// An accepted upgrade request, waiting for its channel (``takeOver(_:channel:)``, once).
    public struct Acceptance: @unchecked Sendable {
        // @unchecked: the negotiated extensions (classes with per-connection state) were made for
        // this connection alone and are used by it alone, once it is handed over on its event loop.
        let accepted: AcceptedWebSocket

        /// The header fields of the 101 the framework writes: the handshake's (`Upgrade`,
        /// `Connection`, `Sec-WebSocket-Accept`, the subprotocol and extensions chosen) and the
        /// `onUpgrade` hook's.
        public var headerFields: HTTPFields { accepted.headerFields }
        /// The subprotocol chosen, if any.
        public var subprotocol: String? { accepted.subprotocol }
    }

    /// The decision on an upgrade request.
    public enum Decision: Sendable {
        /// Accepted: write a 101 with ``Acceptance/headerFields``, then call ``takeOver(_:channel:)``.
        case accept(Acceptance)
        /// Refused: answer with this response (status, header fields, one-line body), then close the connection.
        case refuse(RouteResponse)
    }

    /// Decides an upgrade request for `endpoint` as `upgrade(_:endpoint:httpVersion:channel:removing:)`
    /// does (a request without `Upgrade: websocket` is refused with 426), without touching a channel.
    /// - Parameters:
    ///   - request: the request as the framework routed it (route, path parameters, remote address).
    ///   - endpoint: the endpoint, as a ``WebSocketRouter`` would hold it.
    ///   - httpVersion: the request's HTTP version (an upgrade needs 1.1).
    ///   - eventLoop: the event loop of the request's connection (the `onUpgrade` hook's answer arrives there).
    public func decide(_ request: RouteRequest, endpoint: WebSocketEndpoint, httpVersion: HTTPVersion = .http1_1,
                       eventLoop: any EventLoop) async -> Decision {
        let decision = eventLoop.flatSubmit { [self] in
            let promise = eventLoop.makePromise(of: Decision.self)
            admit(request, endpoint: endpoint, httpVersion: httpVersion, eventLoop: eventLoop, decided: promise.succeed)
            return promise.futureResult
        }
        // The future only fails if the event loop is shutting down.
        return (try? await decision.get()) ?? .refuse(WebSocketAdmission.refusalResponse(
            .serviceUnavailable, reason: "shutting down", headerFields: [:]))
    }

    /// Decides `request` (on `eventLoop`) with the rules of ``WebSocketServer``; calls `decided` on
    /// `eventLoop`. A plain request for the endpoint (no `Upgrade: websocket`) is refused with 426,
    /// as a server's router answers it.
    func admit(_ request: RouteRequest, endpoint: WebSocketEndpoint, httpVersion: HTTPVersion, eventLoop: any EventLoop,
               decided: @escaping (Decision) -> Void) {
        guard ServerHandshake.isUpgradeRequest(request.headerFields) else { return decided(.refuse(ServerContext.upgradeRequired)) }
        let version = (Int(httpVersion.major), Int(httpVersion.minor))
        context.admitWebSocket(request, to: endpoint, settings: context.settings(route: request.route, endpoint: endpoint),
                               eventLoop: eventLoop,
                               validate: { ServerHandshake.validate($0, httpVersion: version, maxHeaderBytes: $1) }) { [self] admission in
            switch admission {
            case .refuse(let status, let reason, let headerFields):
                context.logger.debug("refused upgrade", metadata: ["status": "\(status.code)", "reason": "\(reason)"])
                decided(.refuse(WebSocketAdmission.refusalResponse(status, reason: reason, headerFields: headerFields)))
            case .accept(let accepted):
                decided(.accept(Acceptance(accepted: accepted)))
            }
        }
    }

    /// Runs an accepted request's endpoint on `channel`, whose 101 the framework has written and
    /// whose HTTP handlers it has removed: the WebSocket's handler goes last in the pipeline, and
    /// reads the bytes that reach it from now on. Call it on the channel's event loop, once per
    /// ``Acceptance``. Throws `ChannelError.ioOnClosedChannel` if the channel closed meanwhile
    /// (nothing is counted or run then).
    public func takeOver(_ acceptance: Acceptance, channel: any Channel) throws {
        channel.eventLoop.preconditionInEventLoop()
        guard channel.isActive else { throw ChannelError.ioOnClosedChannel }
        try channel.pipeline.syncOperations.addHandler(makeConnectionHandler(acceptance.accepted, channel: channel))
    }

    /// The handler running an accepted WebSocket on `channel`, the channel tracked (its shutdown) from now on.
    func makeConnectionHandler(_ accepted: AcceptedWebSocket, channel: any Channel) -> ChannelConnectionHandler {
        let request = accepted.request
        let opening = OpeningRequest(request: .converted(request.head), parameters: request.parameters, route: request.route,
                                     remoteAddress: request.remoteAddress ?? channel.remoteAddress)
        let driver = accepted.makeDriver(server: context, opening: opening, connectionID: context.nextConnectionID(),
                                         transport: .http1, eventLoop: channel.eventLoop)
        context.track(channel)
        return ChannelConnectionHandler(driver: driver)
    }
}
