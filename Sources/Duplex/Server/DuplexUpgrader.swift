import DuplexCore
import HTTPTypes
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import ServiceLifecycle

/// Duplex's WebSocket upgrade for an HTTP/1.1 server that Duplex does not run: a framework's
/// (Hummingbird, Vapor) or a NIO pipeline of your own. The framework reads the request and routes
/// it; the upgrader decides it with the same rules as ``WebSocketServer`` (the handshake of RFC
/// 6455 and its statuses, 426 for a version other than 13, Origin, subprotocols, extensions such
/// as permessage-deflate, the endpoint's `onUpgrade`), and on success writes the 101, takes the
/// channel from the framework's HTTP handlers and runs the endpoint on it.
///
/// ```swift
/// let upgrader = DuplexUpgrader()
/// // in the framework's handler of an upgrade request, with its channel and HTTP handlers:
/// let request = RouteRequest(head: head, parameters: ["room": "lobby"], route: "/chat/:room")
/// switch await upgrader.upgrade(request, endpoint: chat, channel: channel, removing: [decoder, encoder, httpHandler]) {
/// case .upgraded: break                        // the channel is the WebSocket's now
/// case .refused(let response): write(response) // its status, header fields and body; then close
/// case .closed: break
/// }
/// ```
///
/// The upgrader is what a ``WebSocketServer`` is to its connections: it holds the topics
/// (`publish(_:to:)`), the count of open WebSockets, the scope their async
/// handlers run in (from its creation) and the settings of each endpoint (made per route on its
/// first upgrade). It is a swift-service-lifecycle `Service`: in a `ServiceGroup` (beside the
/// framework's server), a graceful shutdown sends 1001 to its WebSockets, waits up to
/// ``Configuration/shutdownGracePeriod`` and closes what is left; ``shutdown(gracePeriod:)`` does
/// the same when called.
public final class DuplexUpgrader: Service, Sendable {
    /// Settings of an upgrader: those of its WebSocket connections, and the bounds of the
    /// requests it accepts.
    public struct Configuration: Sendable {
        /// Settings of each WebSocket connection (an endpoint's ``WebSocketEndpoint/configuration`` overrides them).
        public var webSocket: WebSocketConfiguration
        /// Largest request header block of an upgrade request. Default: 16 KiB (431 over it).
        public var maxHandshakeHeaderBytes: Int
        /// How long a graceful shutdown waits for the WebSockets to close after sending 1001. Default: 10 s.
        public var shutdownGracePeriod: TimeAmount
        /// Run each connection's async handler on the connection's event loop rather than on
        /// Swift's global executor. Default: true.
        public var runsHandlersOnEventLoops: Bool

        /// A configuration; every setting has a default (see each property).
        public init(webSocket: WebSocketConfiguration = WebSocketConfiguration(),
                    maxHandshakeHeaderBytes: Int = ServerHandshake.defaultMaxHeaderBytes,
                    shutdownGracePeriod: TimeAmount = .seconds(10), runsHandlersOnEventLoops: Bool = true) {
            self.webSocket = webSocket
            self.maxHandshakeHeaderBytes = maxHandshakeHeaderBytes
            self.shutdownGracePeriod = shutdownGracePeriod
            self.runsHandlersOnEventLoops = runsHandlersOnEventLoops
        }
    }

    /// The upgrader's settings.
    public let configuration: Configuration
    let context: ServerContext
    private let scopeTask: Task<Void, Never>
    private let shutDown = NIOLockedValueBox(false)

    /// An upgrader; the scope of its connections' async handlers starts running now.
    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "duplex.upgrader")) {
        self.configuration = configuration
        let serverConfiguration = WebSocketServer.Configuration(
            webSocket: configuration.webSocket, maxHandshakeHeaderBytes: configuration.maxHandshakeHeaderBytes,
            shutdownGracePeriod: configuration.shutdownGracePeriod,
            runsHandlersOnEventLoops: configuration.runsHandlersOnEventLoops
        )
        let context = ServerContext(configuration: serverConfiguration, router: WebSocketRouter(), logger: logger)
        self.context = context
        let scope = context.scope
        self.scopeTask = Task { await scope.run() }
    }

    deinit {
        // No more handlers: the scope's task ends once the running ones have.
        context.scope.finish()
    }

    /// Number of open WebSocket connections.
    public var connectionCount: Int { context.connectionCount }

    /// What became of an upgrade request.
    public enum Outcome: Sendable {
        /// The 101 went out and the endpoint runs on the channel, with this subprotocol (or none).
        case upgraded(subprotocol: String?)
        /// Refused: answer with this response (the status, header fields and one-line body that
        /// ``WebSocketServer`` answers with), then close the connection: an HTTP/1.1 connection
        /// cannot carry another request after an upgrade request.
        case refused(RouteResponse)
        /// The channel closed before the request was decided; nothing was written.
        case closed
    }

    /// Decides an upgrade request for `endpoint`, and on acceptance upgrades `channel`: writes the
    /// 101 below the framework's HTTP handlers (as bytes, to the handler before the first of
    /// `httpHandlers`), removes `httpHandlers` and runs the endpoint on the channel. A request
    /// without `Upgrade: websocket` is refused with 426, as a ``WebSocketServer`` answers a
    /// plain request for one of its endpoints.
    ///
    /// - Parameters:
    ///   - request: the request as the framework routed it: ``RouteRequest/route`` the route as
    ///     registered (connections of one route share its settings), ``RouteRequest/parameters``
    ///     its path parameters; this is what `onUpgrade` and ``WebSocketConnection/request`` see. Without a
    ///     ``RouteRequest/remoteAddress`` the channel's is used.
    ///   - endpoint: the endpoint, as a ``WebSocketRouter`` would hold it.
    ///   - httpVersion: the request's HTTP version (an upgrade needs 1.1; `HTTPRequest` carries none).
    ///   - channel: the connection, a channel of bytes (TCP, or after TLS).
    ///   - httpHandlers: the framework's HTTP handlers, which leave the pipeline on an upgrade; the
    ///     first is the one nearest the socket, usually the HTTP decoder: the WebSocket's handler
    ///     takes its place, so that bytes it read past the request and forwards when it leaves
    ///     (NIO's `HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)`) reach the WebSocket.
    ///     Handlers after the WebSocket's (the framework's own, kept) see no reads and must see no
    ///     writes. Empty: the channel carries bytes already, and the handler goes last.
    /// - Returns: on the channel's event loop, what became of the request.
    public func upgrade(_ request: RouteRequest, endpoint: WebSocketEndpoint, httpVersion: HTTPVersion = .http1_1,
                        channel: any Channel, removing httpHandlers: [any RemovableChannelHandler]) -> EventLoopFuture<Outcome> {
        let handlers = NIOLoopBound(httpHandlers, eventLoop: channel.eventLoop)
        return channel.eventLoop.flatSubmit { [self] in
            var request = request
            if request.remoteAddress == nil { request.remoteAddress = channel.remoteAddress }
            let result = channel.eventLoop.makePromise(of: Outcome.self)
            admit(request, endpoint: endpoint, httpVersion: httpVersion, eventLoop: channel.eventLoop) { [self] decision in
                guard channel.isActive else { return result.succeed(.closed) }
                switch decision {
                case .refuse(let refusal):
                    result.succeed(.refused(refusal))
                case .accept(let acceptance):
                    let accepted = acceptance.accepted
                    do {
                        try switchProtocols(accepted, channel: channel, httpHandlers: handlers.value)
                        result.succeed(.upgraded(subprotocol: accepted.subprotocol))
                    } catch {
                        context.logger.error("upgrade failed", metadata: ["error": "\(error)"])
                        channel.close(promise: nil)
                        result.succeed(.closed)
                    }
                }
            }
            return result.futureResult
        }
    }

    /// `upgrade(_:endpoint:httpVersion:channel:removing:)` from a task:
    /// what became of the request, once decided (and the channel upgraded).
    public func upgrade(_ request: RouteRequest, endpoint: WebSocketEndpoint, httpVersion: HTTPVersion = .http1_1,
                        channel: any Channel, removing httpHandlers: [any RemovableChannelHandler]) async -> Outcome {
        let result = upgrade(request, endpoint: endpoint, httpVersion: httpVersion, channel: channel,
                             removing: httpHandlers) as EventLoopFuture<Outcome>
        // The future only fails if the channel's event loop is shutting down.
        return (try? await result.get()) ?? .closed
    }

    /// `upgrade(_:endpoint:httpVersion:channel:removing:)` for a request
    /// as NIOHTTP1 decoded it: its head is converted (a malformed one is refused with 400), and
    /// its version is the head's.
    /// - Parameters:
    ///   - head: the request head as NIOHTTP1's decoder produced it.
    ///   - secure: whether the connection is TLS (the request's scheme).
    ///   - route: the route as registered; by default the request's path.
    ///   - parameters: the route's path parameters.
    ///   - endpoint: the endpoint, as a ``WebSocketRouter`` would hold it.
    ///   - channel: the connection, a channel of bytes (TCP, or after TLS).
    ///   - httpHandlers: the framework's HTTP handlers, which leave the pipeline on an upgrade
    ///     (as in the overload that takes a ``RouteRequest``).
    /// - Returns: on the channel's event loop, what became of the request.
    public func upgrade(_ head: HTTPRequestHead, secure: Bool = false, route: String? = nil, parameters: [String: String] = [:],
                        endpoint: WebSocketEndpoint, channel: any Channel,
                        removing httpHandlers: [any RemovableChannelHandler]) -> EventLoopFuture<Outcome> {
        guard let converted = try? HTTPRequest(head, secure: secure, splitCookie: false) else {
            return channel.eventLoop.makeSucceededFuture(.refused(WebSocketAdmission.refusalResponse(
                .badRequest, reason: "malformed HTTP request", headerFields: [:])))
        }
        let request = RouteRequest(head: converted, parameters: parameters, route: route)
        return upgrade(request, endpoint: endpoint, httpVersion: head.version, channel: channel, removing: httpHandlers)
    }

    /// Writes the 101 and hands the channel to the accepted WebSocket (on its event loop).
    private func switchProtocols(_ accepted: AcceptedWebSocket, channel: any Channel,
                                 httpHandlers: [any RemovableChannelHandler]) throws {
        let pipeline = channel.pipeline.syncOperations
        var response = channel.allocator.buffer(capacity: 160)
        ServerHandshake.writeHTTP1SwitchingProtocols(accepted.headerFields, into: &response)
        let handler = makeConnectionHandler(accepted, channel: channel)
        guard let nearest = httpHandlers.first else {
            channel.writeAndFlush(response, promise: nil)
            try pipeline.addHandler(handler)
            return
        }
        // The 101 goes out below every HTTP handler (a context writes to the handlers before it);
        // the other HTTP handlers leave before the WebSocket's handler comes (it may write as soon
        // as it is added: a callback endpoint's onOpen), which takes the nearest one's place; when
        // that one leaves it forwards the bytes it read past the request, outside any read batch:
        // a read-complete ends that batch, or the answers to those bytes would wait for a flush.
        try pipeline.context(handler: nearest).writeAndFlush(NIOAny(response), promise: nil)
        for other in httpHandlers.dropFirst() {
            pipeline.removeHandler(other, promise: nil)
        }
        try pipeline.addHandler(handler, position: .after(nearest))
        let removed = channel.eventLoop.makePromise(of: Void.self)
        pipeline.removeHandler(nearest, promise: removed)
        removed.futureResult.whenSuccess { channel.pipeline.fireChannelReadComplete() }
    }

    /// Runs until the enclosing `ServiceGroup` shuts down gracefully (or the task is cancelled),
    /// then shuts the WebSockets down (``shutdown(gracePeriod:)``).
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Graceful shutdown: no more upgrades (one completing from now on is closed with 1001), 1001
    /// to every WebSocket, up to `gracePeriod` (default ``Configuration/shutdownGracePeriod``) for
    /// them to close, then the rest closed and their handlers cancelled. A second call returns at once.
    public func shutdown(gracePeriod: TimeAmount? = nil) async {
        let first = shutDown.withLockedValue { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        await context.shutDownConnections(gracePeriod: gracePeriod ?? configuration.shutdownGracePeriod, scopeTask: scopeTask)
    }
}
