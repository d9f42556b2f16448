import DuplexCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// A WebSocket server over SwiftNIO: HTTP/1.1 with WebSocket endpoints and plain routes on the
/// same port, optional TLS, graceful shutdown.
///
/// ```swift
/// var router = Router()
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
    public struct Configuration: Sendable {
        /// Address to listen on. Default: 127.0.0.1.
        public var host: String
        /// Port to listen on; 0 picks a free one (see ``WebSocketServer/start()``). Default: 8080.
        public var port: Int
        /// TLS (wss://); nil serves plain ws://.
        public var tls: TLSConfiguration?
        /// Settings of each WebSocket connection (endpoints may override).
        public var webSocket: WebSocketConfiguration
        /// Time a new connection has to send a complete request, and a keep-alive HTTP
        /// connection to send its next one. Default: 10 s.
        public var handshakeTimeout: TimeAmount
        /// Largest request header block of an upgrade request. Default: 16 KiB (431 over it).
        public var maxHandshakeHeaderBytes: Int
        /// How long a graceful shutdown waits for connections to close after sending 1001. Default: 10 s.
        public var shutdownGracePeriod: TimeAmount
        /// Listen backlog. Default: 1024.
        public var backlog: Int32

        public init(
            host: String = "127.0.0.1",
            port: Int = 8080,
            tls: TLSConfiguration? = nil,
            webSocket: WebSocketConfiguration = WebSocketConfiguration(),
            handshakeTimeout: TimeAmount = .seconds(10),
            maxHandshakeHeaderBytes: Int = ServerHandshake.defaultMaxHeaderBytes,
            shutdownGracePeriod: TimeAmount = .seconds(10),
            backlog: Int32 = 1024
        ) {
            self.host = host
            self.port = port
            self.tls = tls
            self.webSocket = webSocket
            self.handshakeTimeout = handshakeTimeout
            self.maxHandshakeHeaderBytes = maxHandshakeHeaderBytes
            self.shutdownGracePeriod = shutdownGracePeriod
            self.backlog = backlog
        }
    }

    public let configuration: Configuration
    let context: ServerContext
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox<ServerState>(.idle)
    private let stopped: EventLoopPromise<Void>

    private enum ServerState {
        case idle
        case running(any Channel)
        case stopped
    }

    /// - Parameters:
    ///   - group: the event loops; by default NIO's shared group with one loop per core.
    public init(configuration: Configuration, router: Router, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "duplex.server")) {
        var router = router
        if router.routes["/healthz"] == nil {
            router.get("/healthz") { _ in .text("ok\n") }
        }
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.context = ServerContext(configuration: configuration, router: router)
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
            if case .running(let channel) = state { return channel.localAddress }
            return nil
        }
    }

    /// Number of open WebSocket connections.
    public var connectionCount: Int { context.connectionCount }

    /// Binds and starts accepting connections.
    /// - Returns: the bound address (useful with port 0).
    @discardableResult
    public func start() async throws -> SocketAddress {
        let sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        let context = self.context
        let logger = self.logger
        let connectionIDs = ManagedAtomicCounter()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    context.track(channel)
                    var connectionLogger = logger
                    connectionLogger[metadataKey: "connection_id"] = "\(connectionIDs.next())"
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
                    let encoder = HTTPResponseEncoder()
                    try sync.addHandler(decoder)
                    try sync.addHandler(encoder)
                    try sync.addHandler(HTTPServerHandler(server: context, decoder: decoder, encoder: encoder, logger: connectionLogger))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        state.withLockedValue { $0 = .running(channel) }
        logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        return channel.localAddress!
    }

    /// Starts (if needed) and runs until ``shutdown()`` or a graceful shutdown of the enclosing
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
    /// (at most `gracePeriod`, default ``Configuration/shutdownGracePeriod``), then close what is left.
    public func shutdown(gracePeriod: TimeAmount? = nil) async {
        let channel: (any Channel)? = state.withLockedValue { state in
            defer { state = .stopped }
            if case .running(let channel) = state { return channel }
            return nil
        }
        guard let channel else {
            stopped.succeed()
            return
        }
        try? await channel.close()
        let open = context.connectionCount
        logger.info("shutting down", metadata: ["open_connections": "\(open)"])
        context.goAwayAll()
        let deadline = NIODeadline.now() + (gracePeriod ?? configuration.shutdownGracePeriod)
        while context.connectionCount > 0 && NIODeadline.now() < deadline {
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        context.closeAll()
        stopped.succeed()
    }
}

/// What every connection of a server shares: configuration, routes, metrics, the registry of
/// open WebSockets (for graceful shutdown).
final class ServerContext: Sendable {
    let configuration: WebSocketServer.Configuration
    let router: Router
    let metrics = WebSocketMetrics(role: .server)
    private let connections = NIOLockedValueBox<[ObjectIdentifier: OpenConnection]>([:])
    /// Every accepted TCP connection, WebSocket or not yet (HTTP keep-alive, handshake in progress).
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    struct OpenConnection: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<WebSocketHandler>
    }

    init(configuration: WebSocketServer.Configuration, router: Router) {
        self.configuration = configuration
        self.router = router
    }

    var connectionCount: Int { connections.withLockedValue { $0.count } }

    func register(channel: any Channel, handler: NIOLoopBound<WebSocketHandler>) {
        let id = ObjectIdentifier(channel)
        connections.withLockedValue { $0[id] = OpenConnection(channel: channel, handler: handler) }
        channel.closeFuture.whenComplete { [self] _ in
            _ = connections.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = channels.withLockedValue { $0.removeValue(forKey: id) }
        }
    }

    func goAwayAll() {
        for connection in connections.withLockedValue({ Array($0.values) }) {
            let handler = connection.handler
            handler.eventLoop.execute {
                handler.value.startClose(code: .goingAway, reason: "server shutting down")
            }
        }
    }

    /// Closes every connection still open: WebSockets and plain HTTP ones alike.
    func closeAll() {
        for channel in channels.withLockedValue({ Array($0.values) }) {
            channel.close(promise: nil)
        }
    }
}

/// A thread-safe counter for connection ids.
final class ManagedAtomicCounter: Sendable {
    private let value = NIOLockedValueBox<UInt64>(0)
    func next() -> UInt64 { value.withLockedValue { $0 += 1; return $0 } }
}
