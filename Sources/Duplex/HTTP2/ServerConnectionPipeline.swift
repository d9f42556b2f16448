import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOHTTPTypesHTTP2
import NIOSSL
import NIOTLS

/// How an accepted connection's pipeline is built: TLS (if any), then HTTP/1.1 or HTTP/2 as ALPN
/// (TLS) or the connection's first bytes (h2c with prior knowledge, when enabled) decide.
extension ServerContext {
    /// Whether the TLS configuration offers HTTP/2 through ALPN.
    static func offersHTTP2(_ tls: TLSConfiguration?) -> Bool {
        tls?.applicationProtocols.contains("h2") ?? false
    }

    /// Sets up an accepted channel (on its event loop).
    func configureConnection(_ channel: any Channel, sslContext: NIOSSLContext?) throws {
        let sync = channel.pipeline.syncOperations
        let secure = sslContext != nil
        if let sslContext {
            try sync.addHandler(NIOSSLServerHandler(context: sslContext))
            guard Self.offersHTTP2(configuration.tls) else { return try configureHTTP1(channel, secure: true) }
            let loopBound = NIOLoopBound(self, eventLoop: channel.eventLoop)
            try sync.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
                channel.eventLoop.makeCompletedFuture {
                    switch result {
                    case .negotiated("h2"): try loopBound.value.configureHTTP2(channel)
                    default: try loopBound.value.configureHTTP1(channel, secure: true)
                    }
                }
            })
        } else if configuration.http2.priorKnowledgeCleartext {
            try sync.addHandler(HTTP2PrefaceDetector(server: self, secure: secure))
        } else {
            try configureHTTP1(channel, secure: false)
        }
    }

    /// HTTP/1.1: NIO's decoder and encoder and the server's handler (routes, upgrades).
    func configureHTTP1(_ channel: any Channel, secure: Bool) throws {
        try HTTPServerHandler.addHandlers(to: channel.pipeline.syncOperations, server: self, secure: secure)
    }

    /// HTTP/2: NIO's connection handler, each stream a child channel with NIOHTTPTypesHTTP2's codec
    /// and an ``HTTP2ServerStreamHandler``; ``HTTP2ConnectionShutdownHandler`` for graceful shutdown.
    func configureHTTP2(_ channel: any Channel) throws {
        countConnection(over: .h2)
        let http2 = configuration.http2
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: http2.maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: http2.streamWindowSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: http2.maxHeaderListSize),
        ]
        // RFC 8441 §3: advertised only with WebSocket endpoints to serve (browsers take it as a promise).
        if !router.webSockets.all.isEmpty {
            connection.initialSettings.append(HTTP2Setting(parameter: .enableConnectProtocol, value: 1))
        }
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = http2.streamWindowSize
        let shutdown = HTTP2ConnectionShutdownHandler(idleTimeout: http2.idleConnectionTimeout)
        let streams = NIOLoopBound(shutdown, eventLoop: channel.eventLoop)
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(shutdown)
        _ = try sync.configureHTTP2Pipeline(mode: .server, connectionConfiguration: connection, streamConfiguration: stream) {
            [self] streamChannel in
            streamChannel.eventLoop.makeCompletedFuture {
                streams.value.opened(streamChannel)
                let codec = HTTP2FramePayloadToHTTPServerCodec()
                try streamChannel.pipeline.syncOperations.addHandler(codec)
                try streamChannel.pipeline.syncOperations.addHandler(
                    HTTP2ServerStreamHandler(server: self, connectionID: nextConnectionID(), codec: codec))
            }
        }
    }
}

/// On a plain port with h2c enabled: reads the connection's first bytes; the HTTP/2 client preface
/// (RFC 9113 §3.4) makes it an HTTP/2 connection, anything else an HTTP/1.1 one. The bytes read go on
/// to the protocol chosen.
final class HTTP2PrefaceDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private let server: ServerContext
    private let secure: Bool
    private var buffered: ByteBuffer?

    init(server: ServerContext, secure: Bool) {
        self.server = server
        self.secure = secure
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if buffered == nil { buffered = bytes } else { buffered!.writeBuffer(&bytes) }
        let seen = buffered!.readableBytesView.prefix(Self.preface.count)
        guard seen.elementsEqual(Self.preface.prefix(seen.count)) else { return decide(http2: false, context: context) }
        if seen.count == Self.preface.count { decide(http2: true, context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        buffered = nil
        context.fireChannelInactive()
    }

    private func decide(http2: Bool, context: ChannelHandlerContext) {
        do {
            if http2 { try server.configureHTTP2(context.channel) } else { try server.configureHTTP1(context.channel, secure: secure) }
        } catch {
            context.close(promise: nil)
            return
        }
        let bytes = buffered
        buffered = nil
        if let bytes { context.fireChannelRead(wrapInboundOut(bytes)) }
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// The end of one HTTP/2 connection. Graceful shutdown: on ``ServerShutdownEvent`` every stream
/// hears it (WebSockets close with 1001, in this loop turn), then a GOAWAY tells the client to open
/// no more streams; the connection closes when its last stream has. Idle: a connection without
/// streams for ``HTTP2ServerConfiguration/idleConnectionTimeout`` gets a GOAWAY and is closed.
final class HTTP2ConnectionShutdownHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let idleTimeout: TimeAmount
    private var streams: [ObjectIdentifier: any Channel] = [:]
    private var highestStreamID = HTTP2StreamID(0)
    private var goingAway = false
    private var connection: (any Channel)?
    private var idleTimer: Scheduled<Void>?

    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connection = context.channel
        armIdleTimer(context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
    }

    private func armIdleTimer(_ channel: any Channel) {
        idleTimer?.cancel()
        idleTimer = channel.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout) { [self] in
            guard streams.isEmpty, !goingAway else { return }
            goingAway = true
            sendGoAway(on: channel)
        }
    }

    private func sendGoAway(on channel: any Channel) {
        let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: highestStreamID, errorCode: .noError, opaqueData: nil))
        channel.writeAndFlush(frame, promise: nil)
        if streams.isEmpty { channel.close(promise: nil) }
    }

    /// A stream the client opened.
    func opened(_ stream: any Channel) {
        let id = ObjectIdentifier(stream)
        streams[id] = stream
        idleTimer?.cancel()
        idleTimer = nil
        if let streamID = try? stream.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID), streamID > highestStreamID {
            highestStreamID = streamID
        }
        stream.closeFuture.assumeIsolated().whenComplete { [self] _ in
            streams.removeValue(forKey: id)
            guard streams.isEmpty, let connection else { return }
            if goingAway { connection.close(promise: nil) } else { armIdleTimer(connection) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ServerShutdownEvent, !goingAway {
            goingAway = true
            for stream in streams.values { stream.pipeline.fireUserInboundEventTriggered(ServerShutdownEvent()) }
            // After this turn's flushes (the 1001s go first), the GOAWAY.
            let channel = context.channel
            context.eventLoop.assumeIsolated().execute { [self] in sendGoAway(on: channel) }
        }
        context.fireUserInboundEventTriggered(event)
    }
}
