import DuplexCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

extension WebSocketConnection {
    /// Opens a client connection: TCP (through an HTTP proxy when configured), TLS for `wss://`,
    /// then the opening handshake (RFC 6455 §4.1) with a fresh random key.
    ///
    /// ```swift
    /// let ws = try await WebSocketConnection.connect(to: "wss://example.com/chat?room=1")
    /// try await ws.send(text: "hello")
    /// for try await message in ws.messages { print(message) }
    /// print(ws.closeCode ?? "open")
    /// ```
    ///
    /// - Parameters:
    ///   - url: a `ws://` or `wss://` URL (see ``WebSocketURL``).
    ///   - configuration: what to offer, TLS, proxy, timeouts, connection settings.
    ///   - group: the event loops; NIO's shared group by default.
    ///   - logger: the connection's logger.
    /// - Returns: the open connection.
    /// - Throws: ``WebSocketError/invalidURL(_:)`` for a URL that is not ws/wss;
    ///   ``WebSocketError/handshakeFailed(_:)`` when the server's answer does not complete the
    ///   handshake (a status other than 101 with its headers, a wrong `Sec-WebSocket-Accept`, a
    ///   missing `Upgrade` or `Connection`, a subprotocol or extension that was not offered);
    ///   ``WebSocketError/handshakeTimeout`` past ``WebSocketClientConfiguration/handshakeTimeout``;
    ///   ``WebSocketError/proxyFailed(_:)`` when the proxy refuses the tunnel;
    ///   ``WebSocketError/connectionClosedDuringHandshake``; NIO's connection errors (refused,
    ///   unreachable) and NIOSSL's TLS errors (an untrusted certificate) as they are; through a
    ///   proxy, ``TLSIdentityError`` for a certificate that does not name the host.
    public static func connect(
        to url: String,
        configuration: WebSocketClientConfiguration = WebSocketClientConfiguration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "duplex.client")
    ) async throws -> WebSocketConnection {
        try await connect(to: WebSocketURL(url), configuration: configuration, group: group, logger: logger)
    }

    /// Opens a client connection to a parsed URL; see the overload that takes a `String`.
    public static func connect(
        to url: WebSocketURL,
        configuration: WebSocketClientConfiguration = WebSocketClientConfiguration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "duplex.client")
    ) async throws -> WebSocketConnection {
        try await open(url, configuration: configuration, callbacks: nil, group: group, logger: logger)
    }

    /// Opens a client connection served by callbacks on its event loop, the fastest way to
    /// consume messages: no task or actor hop per message, and a send made in `onMessage` is
    /// written before anything read after that message is acted on.
    ///
    /// ```swift
    /// let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:8080/echo", callbacks: WebSocketCallbacks(
    ///     onMessage: { ws, data in print(data.text ?? "\(data.bytes.readableBytes) bytes") },
    ///     onClose: { _, frame in print("closed:", frame) }
    /// ))
    /// try await ws.send(text: "hello")
    /// ```
    ///
    /// The returned ``WebSocketConnection`` sends, closes and reports the close like any other; its
    /// ``WebSocketConnection/messages`` stay empty, as every message goes to `onMessage`. `onOpen` runs
    /// before this function returns. Errors are those of ``connect(to:configuration:group:logger:)-(String,_,_,_)``.
    public static func connect(
        to url: String,
        configuration: WebSocketClientConfiguration = WebSocketClientConfiguration(),
        callbacks: WebSocketCallbacks,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "duplex.client")
    ) async throws -> WebSocketConnection {
        try await connect(to: WebSocketURL(url), configuration: configuration, callbacks: callbacks, group: group, logger: logger)
    }

    /// Opens a client connection served by callbacks to a parsed URL; see the overload that takes a `String`.
    public static func connect(
        to url: WebSocketURL,
        configuration: WebSocketClientConfiguration = WebSocketClientConfiguration(),
        callbacks: WebSocketCallbacks,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "duplex.client")
    ) async throws -> WebSocketConnection {
        try await open(url, configuration: configuration, callbacks: callbacks, group: group, logger: logger)
    }

    /// The connection attempt behind every `connect`: async (`callbacks` nil) or callbacks.
    static func open(
        _ url: WebSocketURL,
        configuration: WebSocketClientConfiguration,
        callbacks: WebSocketCallbacks?,
        group: any EventLoopGroup,
        logger: Logger
    ) async throws -> WebSocketConnection {
        let proxy: HTTPProxy?
        switch configuration.proxy {
        case .none: proxy = nil
        case .environment: proxy = try HTTPProxy.fromEnvironment(for: url)
        case .http(let fixed): proxy = fixed
        }
        var sslContext: NIOSSLContext? = nil
        var serverName: String? = nil
        var tunnelIdentity: String? = nil
        if url.isSecure {
            var tls = configuration.tls.makeTLSConfiguration()
            if proxy != nil && configuration.tls.custom == nil && tls.certificateVerification == .fullVerification {
                // Through a tunnel NIOSSL would also accept the proxy's IP address: the chain is
                // checked by NIOSSL, the name by TunnelIdentityCheck, against the target.
                tls.certificateVerification = .noHostnameVerification
                tunnelIdentity = configuration.tls.serverName ?? url.host
            }
            sslContext = try NIOSSLContext(configuration: tls)
            serverName = configuration.tls.serverName ?? (url.isIPAddress ? nil : url.host)
        }
        var extraHeaders = configuration.headerFields
        if let user = url.user, extraHeaders[.authorization] == nil {
            extraHeaders[.authorization] = ClientHandshake.basicAuthorization(user: user, password: url.password ?? "")
        }
        let handshake = ClientHandshake(
            host: url.hostHeader, path: url.requestTarget, subprotocols: configuration.subprotocols,
            extensions: configuration.extensions, origin: configuration.origin, extraHeaders: extraHeaders
        )

        var logger = logger
        // Without the query, which may carry a token.
        logger[metadataKey: "url"] = "\(url.scheme)://\(url.hostHeader)\(url.path)"
        if let proxy { logger[metadataKey: "proxy"] = "\(proxy)" }
        let connectionLogger = logger
        let loop = group.next()
        let promise = loop.makePromise(of: WebSocketConnection.self)
        let application: WebSocketApplication
        if var callbacks {
            let onOpen = callbacks.onOpen
            callbacks.onOpen = { ws in
                // The caller's `connect` returns once its own onOpen has run, as documented.
                onOpen(ws)
                promise.succeed(ws.socket)
            }
            application = .callbacks(callbacks)
        } else {
            application = .handOff(promise)
        }
        let deadline = NIODeadline.now() + configuration.handshakeTimeout
        let webSocketConfiguration = configuration.webSocket
        let sslHandlerContext = sslContext
        let sni = serverName
        let tunnelCheck = tunnelIdentity

        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(configuration.handshakeTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The handlers of a direct connection (added once a proxy's tunnel is open).
                    let direct = { (sync: ChannelPipeline.SynchronousOperations) throws in
                        if let sslHandlerContext {
                            try sync.addHandler(NIOSSLClientHandler(context: sslHandlerContext, serverHostname: sni))
                            if let tunnelCheck { try sync.addHandler(TunnelIdentityCheck(expected: tunnelCheck)) }
                        }
                        let encoder = HTTPRequestEncoder()
                        let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes))
                        try sync.addHandler(encoder)
                        try sync.addHandler(decoder)
                        try sync.addHandler(ClientUpgradeHandler(
                            handshake: handshake, webSocketConfiguration: webSocketConfiguration,
                            promise: promise, application: application, deadline: deadline, encoder: encoder, decoder: decoder,
                            logger: connectionLogger
                        ))
                    }
                    if let proxy {
                        try ProxyTunnel.open(on: channel, to: url, through: proxy, deadline: deadline, then: direct,
                                             failed: { promise.fail($0) })
                    } else {
                        try direct(channel.pipeline.syncOperations)
                    }
                }
            }

        if let h2 = try await HTTP2ClientPool.shared.connection(for: url, configuration: configuration, serverName: serverName,
                                                                 viaProxy: proxy != nil, group: group, logger: logger) {
            h2.openWebSocket(handshake: handshake, configuration: webSocketConfiguration, promise: promise,
                             application: application, deadline: deadline, logger: connectionLogger)
        } else {
            logger.debug("connecting")
            let connected = bootstrap.connect(host: proxy?.host ?? url.host, port: proxy?.port ?? url.port)
            connected.whenComplete { result in
                switch result {
                case .success(let channel):
                    // Whatever ends the attempt early (cancellation included) also closes the channel.
                    promise.futureResult.whenFailure { _ in channel.close(promise: nil) }
                case .failure(let error):
                    promise.fail(clientConnectFailure(error))
                }
            }
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            promise.fail(CancellationError())
        }
    }
}
