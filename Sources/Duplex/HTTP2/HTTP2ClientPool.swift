import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// Whether ``WebSocketConnection/connect(to:configuration:group:logger:)-(String,_,_,_)`` carries a `wss://` WebSocket as a
/// stream of a shared HTTP/2 connection (RFC 8441).
public enum HTTP2Preference: Sendable, Hashable {
    /// HTTP/1.1 upgrades only, one TCP connection per WebSocket (the default).
    case never
    /// Offer `h2` by ALPN on one connection per origin (host, port, TLS server name), reused by every
    /// WebSocket to that origin; each WebSocket is a stream opened by an extended CONNECT. When the
    /// server picks HTTP/1.1 or does not advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL`, the
    /// WebSocket falls back to an HTTP/1.1 upgrade (and that origin is not asked again while the
    /// process runs). Not through an HTTP proxy, and not for `ws://` (browsers never use h2c).
    /// The shared connection, and so every WebSocket on it, runs on a loop of the group passed to
    /// the `connect` that opened it.
    case preferred
}

/// One HTTP/2 connection to an origin that accepts extended CONNECT: where WebSocket streams open.
final class HTTP2ClientConnection: Sendable {
    let channel: any Channel
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    init(channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
        self.channel = channel
        self.multiplexer = multiplexer
    }
}

/// The client's HTTP/2 connections, one per origin, shared by every `connect` with
/// ``HTTP2Preference/preferred``; a connection leaves when it closes.
final class HTTP2ClientPool: Sendable {
    static let shared = HTTP2ClientPool()

    private enum Entry {
        case connecting(EventLoopFuture<HTTP2ClientConnection?>)
        /// The origin answered HTTP/1.1, or HTTP/2 without extended CONNECT.
        case unsupported
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    /// The HTTP/2 connection for a `connect` to `url`, or nil for an HTTP/1.1 upgrade: when the
    /// configuration does not prefer HTTP/2, for `ws://`, through a proxy, or when the origin does
    /// not carry WebSockets over HTTP/2.
    func connection(for url: WebSocketURL, configuration: WebSocketClientConfiguration, serverName: String?, viaProxy: Bool,
                    group: any EventLoopGroup, logger: Logger) async throws -> HTTP2ClientConnection? {
        guard configuration.http2 == .preferred, url.isSecure, !viaProxy else { return nil }
        return try await connection(host: url.host, port: url.port, serverName: serverName,
                                    tls: configuration.tls.makeTLSConfiguration(), timeout: configuration.handshakeTimeout,
                                    group: group, logger: logger).get()
    }

    /// The origin's HTTP/2 connection (opened on first use), or nil when it does not carry WebSockets.
    func connection(host: String, port: Int, serverName: String?, tls: TLSConfiguration, timeout: TimeAmount,
                    group: any EventLoopGroup, logger: Logger) -> EventLoopFuture<HTTP2ClientConnection?> {
        let key = "\(host):\(port)/\(serverName ?? "")"
        let loop = group.next()
        let (future, isNew): (EventLoopFuture<HTTP2ClientConnection?>, Bool) = entries.withLockedValue { entries in
            switch entries[key] {
            case .connecting(let future): return (future, false)
            case .unsupported: return (loop.makeSucceededFuture(nil), false)
            case nil:
                let promise = loop.makePromise(of: HTTP2ClientConnection?.self)
                entries[key] = .connecting(promise.futureResult)
                Self.open(host: host, port: port, serverName: serverName, tls: tls, timeout: timeout, loop: loop,
                          promise: promise, logger: logger)
                return (promise.futureResult, true)
            }
        }
        guard isNew else { return future }
        future.whenComplete { [self] result in
            switch result {
            case .success(let connection?):
                connection.channel.closeFuture.whenComplete { [self] _ in
                    entries.withLockedValue { entries in
                        if case .connecting(let current) = entries[key], current === future { entries[key] = nil }
                    }
                }
            case .success(nil):
                entries.withLockedValue { $0[key] = .unsupported }
            case .failure:
                entries.withLockedValue { $0[key] = nil }
            }
        }
        return future
    }

    private static func open(host: String, port: Int, serverName: String?, tls: TLSConfiguration, timeout: TimeAmount,
                             loop: any EventLoop, promise: EventLoopPromise<HTTP2ClientConnection?>, logger: Logger) {
        var tls = tls
        tls.applicationProtocols = ["h2", "http/1.1"]
        let sslContext: NIOSSLContext
        do {
            sslContext = try NIOSSLContext(configuration: tls)
        } catch {
            promise.fail(error)
            return
        }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    try sync.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
                        channel.eventLoop.makeCompletedFuture {
                            guard case .negotiated("h2") = result else {
                                logger.debug("the server chose HTTP/1.1: WebSockets to it use HTTP/1.1 upgrades")
                                promise.succeed(nil)
                                channel.close(promise: nil)
                                return
                            }
                            let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                                mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                            ) { stream in stream.close() }  // the server opens no streams (no push)
                            let connection = HTTP2ClientConnection(channel: channel, multiplexer: multiplexer)
                            try channel.pipeline.syncOperations.addHandler(ConnectProtocolSettingWatcher { enabled in
                                if enabled {
                                    promise.succeed(connection)
                                } else {
                                    logger.debug("the server does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL: HTTP/1.1 upgrades")
                                    promise.succeed(nil)
                                    channel.close(promise: nil)
                                }
                            })
                        }
                    })
                }
            }
        bootstrap.connect(host: host, port: port).whenComplete { result in
            switch result {
            case .success(let channel):
                let closed = channel.closeFuture
                closed.whenComplete { _ in promise.fail(WebSocketError.connectionClosedDuringHandshake) }
                loop.scheduleTask(in: timeout) { promise.fail(WebSocketError.handshakeTimeout) }
                promise.futureResult.whenFailure { _ in channel.close(promise: nil) }
            case .failure(let error):
                promise.fail(clientConnectFailure(error))
            }
        }
    }
}

/// Reads the server's first SETTINGS frame on an HTTP/2 connection (root-stream frames pass the
/// connection handler) and reports whether it enables extended CONNECT (RFC 8441 §3).
final class ConnectProtocolSettingWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame

    private var report: ((Bool) -> Void)?

    init(report: @escaping (Bool) -> Void) {
        self.report = report
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .settings(.settings(let settings)) = frame.payload, let report {
            self.report = nil
            report(settings.contains { $0.parameter == .enableConnectProtocol && $0.value == 1 })
        }
        context.fireChannelRead(data)
    }
}
