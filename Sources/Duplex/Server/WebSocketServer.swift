import DuplexCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Atomics

/// A WebSocket server over SwiftNIO: HTTP/1.1 with WebSocket endpoints and plain routes on the
/// same port, optional TLS, graceful shutdown.
///
/// ```swift
/// var router = WebSocketRouter()
/// router.webSocket("/echo", WebSocketEndpoint { ws in
///     for try await message in ws.messages { try await ws.send(message) }
/// })
/// let server = WebSocketServer(configuration: .init(port: 8080), router: router)
/// try await server.run()   // until SIGINT/SIGTERM through a ServiceGroup, or shutdown()
/// ```
///
/// `WebSocketServer` is a swift-service-lifecycle `Service`: in a `ServiceGroup`, a graceful
/// shutdown stops accepting connections, sends 1001 to every WebSocket, waits up to
/// ``Configuration/shutdownGracePeriod`` and then closes what is left.
public final class WebSocketServer: Service, Sendable {
    /// Settings of a server: address, TLS, the settings of its WebSocket connections, and the
    /// bounds of the HTTP requests it reads.
    public struct Configuration: Sendable {
        /// Address to listen on. Default: 127.0.0.1.
        public var host: String
        /// Port to listen on; 0 picks a free one (see ``WebSocketServer/start()``). Default: 8080.
        public var port: Int
        /// TLS (wss://); nil serves plain ws://. With `h2` among its ALPN protocols, HTTP/2 is
        /// served too (see ``http2``).
        public var tls: TLSConfiguration?
        /// HTTP/2: WebSockets as streams (RFC 8441) and plain routes; h2c. See ``HTTP2ServerConfiguration``.
        public var http2 = HTTP2ServerConfiguration()
        /// Settings of each WebSocket connection (endpoints may override).
        public var webSocket: WebSocketConfiguration
        /// Time a new connection has to send a complete request, and a keep-alive HTTP
        /// connection to send its next one. Default: 10 s.
        public var handshakeTimeout: TimeAmount
        /// Largest request header block of an upgrade request. Default: 16 KiB (431 over it).
        public var maxHandshakeHeaderBytes: Int
        /// Largest body of a plain HTTP request that a route gets in ``RouteRequest/body``.
        /// Default: 1 MiB. A request over it (by its `Content-Length`, or as its body arrives) is
        /// answered 413 and the connection closes after the answer.
        public var maxRequestBodyBytes: Int
        /// How long a graceful shutdown waits for connections to close after sending 1001. Default: 10 s.
        public var shutdownGracePeriod: TimeAmount
        /// Listen backlog. Default: 4096 (the kernel caps it at `net.core.somaxconn`).
        public var backlog: Int32
        /// Connections accepted per wakeup of the listening socket. Default: 256 (NIO's own
        /// default of 4 lets a burst of connects overflow the listen queue).
        public var acceptsPerWakeup: UInt
        /// The size of a connection's first read buffer; NIO adapts it to the traffic (up to 64 KiB)
        /// and keeps one per connection, so it is most of what an idle connection costs. Default:
        /// 512 bytes (NIO's default is 2 KiB).
        public var initialReceiveBufferSize: Int
        /// Run each connection's async handler on the connection's event loop (no thread hop
        /// per message; do not block in handlers), rather than on Swift's global executor.
        /// Default: true.
        public var runsHandlersOnEventLoops: Bool
        /// How long the server stops accepting after accepting failed (EMFILE/ENFILE when file
        /// descriptors run out, ENOBUFS, ENOMEM); the error is logged, the open connections go
        /// on, and accepting resumes after this delay (NIO's `AcceptBackoffHandler`). Default: 1 s.
        public var acceptRetryDelay: TimeAmount

        /// A configuration; every setting has a default (see each property).
        public init(
            host: String = "127.0.0.1",
            port: Int = 8080,
            tls: TLSConfiguration? = nil,
            webSocket: WebSocketConfiguration = WebSocketConfiguration(),
            handshakeTimeout: TimeAmount = .seconds(10),
            maxHandshakeHeaderBytes: Int = ServerHandshake.defaultMaxHeaderBytes,
            maxRequestBodyBytes: Int = 1 << 20,
            shutdownGracePeriod: TimeAmount = .seconds(10),
            backlog: Int32 = 4096,
            acceptsPerWakeup: UInt = 256,
            initialReceiveBufferSize: Int = 512,
            runsHandlersOnEventLoops: Bool = true,
            acceptRetryDelay: TimeAmount = .seconds(1)
        ) {
            self.host = host
            self.port = port
            self.tls = tls
            self.webSocket = webSocket
            self.handshakeTimeout = handshakeTimeout
            self.maxHandshakeHeaderBytes = maxHandshakeHeaderBytes
            self.maxRequestBodyBytes = maxRequestBodyBytes
            self.shutdownGracePeriod = shutdownGracePeriod
            self.backlog = backlog
            self.acceptsPerWakeup = acceptsPerWakeup
            self.initialReceiveBufferSize = initialReceiveBufferSize
            self.runsHandlersOnEventLoops = runsHandlersOnEventLoops
            self.acceptRetryDelay = acceptRetryDelay
        }
    }

    /// The settings the server was made with.
    public let configuration: Configuration
    let context: ServerContext
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox<ServerState>(.idle)
    private let stopped: EventLoopPromise<Void>

    private enum ServerState {
        case idle
        case running(any Channel, Task<Void, Never>)
        case stopped
    }

    /// A server that has not started yet (see ``start()`` and ``run()``).
    /// - Parameters:
    ///   - configuration: address, TLS, connection settings and request bounds.
    ///   - router: the WebSocket endpoints and HTTP routes; a `GET /healthz` route answering
    ///     `ok` is added unless the router has one.
    ///   - group: the event loops; by default NIO's shared group with one loop per core.
    ///   - logger: where the server and its connections log; by default the label `duplex.server`.
    public init(configuration: Configuration, router: WebSocketRouter,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "duplex.server")) {
        var router = router
        if !router.hasRoute(.get, at: "/healthz") {
            router.get("/healthz") { _ in .text("ok\n") }
        }
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.context = ServerContext(configuration: configuration, router: router, logger: logger)
        self.stopped = group.any().makePromise(of: Void.self)
    }

    deinit {
        // A server that was never started or shut down (or whose start failed) must not leak
        // its promise: NIO traps on that in debug builds. Completing it twice is harmless.
        stopped.succeed()
    }

    /// The bound address once started.
    public var localAddress: SocketAddress? {
        state.withLockedValue { state in
            if case .running(let channel, _) = state { return channel.localAddress }
            return nil
        }
    }

    /// Number of open WebSocket connections.
    public var connectionCount: Int { context.connectionCount }

    /// Binds and starts accepting connections, and starts the scope in which the async
    /// handlers of its connections run.
    /// - Returns: the bound address (useful with port 0).
    @discardableResult
    public func start() async throws -> SocketAddress {
        let sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        let context = self.context
        let retryDelay = configuration.acceptRetryDelay
        let logger = self.logger
        let channel = try await ServerBootstrap(group: group)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(AcceptBackoffHandler(shouldForwardIOErrorCaught: true) { _ in retryDelay })
                    try sync.addHandler(AcceptErrorLogger(logger: logger, retryDelay: retryDelay))
                }
            }
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.maxMessagesPerRead, value: configuration.acceptsPerWakeup)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 64, initial: configuration.initialReceiveBufferSize, maximum: 1 << 16))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    context.track(channel)
                    try context.configureConnection(channel, sslContext: sslContext)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        let scope = context.scope
        let scopeTask = Task { await scope.run() }
        state.withLockedValue { $0 = .running(channel, scopeTask) }
        logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return channel.localAddress!
    }

    /// Starts (if needed) and runs until ``shutdown(gracePeriod:)`` or a graceful shutdown of the enclosing
    /// `ServiceGroup` (SIGINT/SIGTERM when the group is set up for them).
    public func run() async throws {
        if localAddress == nil { try await start() }
        try await withGracefulShutdownHandler {
            try await stopped.futureResult.get()
        } onGracefulShutdown: {
            Task { await self.shutdown() }
        }
    }

    /// Graceful shutdown: stop accepting, send 1001 to every WebSocket, wait for them to close
    /// (at most `gracePeriod`, default ``Configuration/shutdownGracePeriod``), then close what is
    /// left and cancel the handlers still running.
    public func shutdown(gracePeriod: TimeAmount? = nil) async {
        let running: (any Channel, Task<Void, Never>)? = state.withLockedValue { state in
            defer { state = .stopped }
            if case .running(let channel, let scopeTask) = state { return (channel, scopeTask) }
            return nil
        }
        guard let (channel, scopeTask) = running else {
            stopped.succeed()
            return
        }
        try? await channel.close()
        await context.shutDownConnections(gracePeriod: gracePeriod ?? configuration.shutdownGracePeriod, scopeTask: scopeTask)
        stopped.succeed()
    }
}

/// What every connection of a server shares: configuration, routes, the settings of each
/// endpoint, the handler scope, and the registry of open connections (for graceful shutdown).
final class ServerContext: Sendable {
    let configuration: WebSocketServer.Configuration
    let router: WebSocketRouter
    let logger: Logger
    let metrics = WebSocketMetrics(role: .server)
    let serverMetrics = ServerMetrics()
    let scope = HandlerScope()
    let topics = TopicRegistry()
    /// The HTTP fallback sessions of its endpoints.
    let sessions = HTTPSessionTable()
    let transportStatistics = TransportStatistics()
    /// The settings of each WebSocket endpoint, by its path as registered, made once.
    let endpointSettings: [String: ConnectionSettings]
    /// The settings of endpoints mounted on a framework's routes, by route (``settings(route:endpoint:)``).
    private let mountedSettings = NIOLockedValueBox<[String: ConnectionSettings]>([:])
    private let liveWebSockets: LiveConnectionCounter
    private let connectionIDs = ManagedAtomic<UInt64>(0)
    /// Every accepted TCP connection, WebSocket or not yet (HTTP keep-alive, handshake in progress).
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    private let executors = NIOLockedValueBox<[ObjectIdentifier: EventLoopTaskExecutor]>([:])

    init(configuration: WebSocketServer.Configuration, router: WebSocketRouter, logger: Logger) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        let live = LiveConnectionCounter()
        self.liveWebSockets = live
        var settings: [String: ConnectionSettings] = [:]
        for (path, endpoint) in router.webSockets.all {
            settings[path] = Self.makeSettings(route: path, endpoint: endpoint, configuration: configuration, metrics: metrics,
                                               logger: logger, scope: scope, live: live, topics: topics)
        }
        self.endpointSettings = settings
    }

    /// The settings every connection of one endpoint shares: its configuration (or the server's),
    /// and the server's metrics, logger (with the route as `path`), handler scope, count and topics.
    private static func makeSettings(route: String, endpoint: WebSocketEndpoint, configuration: WebSocketServer.Configuration,
                                     metrics: WebSocketMetrics, logger: Logger, scope: HandlerScope,
                                     live: LiveConnectionCounter, topics: TopicRegistry) -> ConnectionSettings {
        var endpointLogger = logger
        endpointLogger[metadataKey: "path"] = "\(route)"
        return ConnectionSettings(
            role: .server, configuration: endpoint.configuration ?? configuration.webSocket,
            metrics: metrics, logger: endpointLogger, scope: scope, live: live, topics: topics
        )
    }

    /// The settings of an endpoint this server's router does not hold (a framework's route,
    /// ``DuplexUpgrader``), made for its route on first use and kept.
    func settings(route: String, endpoint: WebSocketEndpoint) -> ConnectionSettings {
        if let settings = endpointSettings[route] { return settings }
        return mountedSettings.withLockedValue { mounted in
            if let settings = mounted[route] { return settings }
            let settings = Self.makeSettings(route: route, endpoint: endpoint, configuration: configuration, metrics: metrics,
                                             logger: logger, scope: scope, live: liveWebSockets, topics: topics)
            mounted[route] = settings
            return settings
        }
    }

    /// Number of open WebSocket connections.
    var connectionCount: Int { liveWebSockets.value }

    /// Returns once no WebSocket connection is open (at once if none is), or when cancelled.
    func waitUntilNoConnections() async { await liveWebSockets.waitUntilZero() }

    func nextConnectionID() -> UInt64 { connectionIDs.wrappingIncrementThenLoad(ordering: .relaxed) }

    /// Where the async handlers of connections on `eventLoop` run: on that loop, unless the
    /// configuration says otherwise.
    func handlerExecutor(for eventLoop: any EventLoop) -> (any TaskExecutor)? {
        guard configuration.runsHandlersOnEventLoops else { return nil }
        let id = ObjectIdentifier(eventLoop)
        return executors.withLockedValue { executors in
            if let executor = executors[id] { return executor }
            let executor = EventLoopTaskExecutor(eventLoop: eventLoop)
            executors[id] = executor
            return executor
        }
    }

    func track(_ channel: any Channel) {
        transportStatistics.accepted()
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = channels.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    /// The end of a graceful shutdown, once nothing new arrives: no more handlers, 1001 to every
    /// WebSocket, up to `gracePeriod` for them to close, then the rest closed and the handlers'
    /// scope (the task running ``scope``) cancelled and waited for.
    func shutDownConnections(gracePeriod: TimeAmount, scopeTask: Task<Void, Never>) async {
        // Connections whose upgrade completes from now on are refused with 1001 at once.
        scope.finish()
        logger.info("shutting down", metadata: ["open_connections": "\(connectionCount)"])
        goAwayAll()
        // Until the last WebSocket has closed (woken by its close, not polled), at most the grace period.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilNoConnections() }
            group.addTask { try? await Task.sleep(nanoseconds: UInt64(Swift.max(gracePeriod.nanoseconds, 0))) }
            await group.next()
            group.cancelAll()
        }
        closeAll()
        // Every connection is closing, which cancels its handler; a handler that ignores
        // cancellation gets one more second before the server stops waiting for it.
        scopeTask.cancel()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await scopeTask.value }
            group.addTask { try? await Task.sleep(nanoseconds: 1_000_000_000) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Tells every connection that the server shuts down: WebSockets start their closing
    /// handshake with 1001, idle HTTP connections close.
    func goAwayAll() {
        for channel in channels.withLockedValue({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(ServerShutdownEvent())
        }
        sessions.goAwayAll()
    }

    /// Closes every connection still open: WebSockets and plain HTTP ones alike.
    func closeAll() {
        for channel in channels.withLockedValue({ Array($0.values) }) {
            channel.close(promise: nil)
        }
        sessions.endAll()
    }
}
