import DuplexCore
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP2
import NIOHTTPTypes
import NIOHTTPTypesHTTP2

/// The client's opening handshake on an HTTP/2 stream (RFC 8441): sends the extended CONNECT,
/// checks the answer with DuplexCore's ``ClientHandshake/validateExtendedConnect(_:)``, and on a
/// `200` puts an ``HTTP2StreamConnectionHandler`` in place of itself and the HTTP codec. Every way
/// the attempt ends early (a refusal, the deadline, a reset stream) fails `promise` and closes the stream.
final class HTTP2ClientStreamHandler: ClientHandshakeHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPRequestPart

    private let handshake: ClientHandshake
    private let webSocketConfiguration: WebSocketConfiguration
    private let promise: EventLoopPromise<WebSocketConnection>
    private let application: WebSocketApplication
    let deadline: NIODeadline
    private let codec: HTTP2FramePayloadToHTTPClientCodec
    let logger: Logger
    private var sent = false
    private var done = false
    var timeout: Scheduled<Void>?

    init(handshake: ClientHandshake, webSocketConfiguration: WebSocketConfiguration, promise: EventLoopPromise<WebSocketConnection>,
         application: WebSocketApplication, deadline: NIODeadline, codec: HTTP2FramePayloadToHTTPClientCodec, logger: Logger) {
        self.handshake = handshake
        self.webSocketConfiguration = webSocketConfiguration
        self.promise = promise
        self.application = application
        self.deadline = deadline
        self.codec = codec
        self.logger = logger
    }

    func sendRequest(context: ChannelHandlerContext) {
        guard !sent else { return }
        sent = true
        context.writeAndFlush(wrapOutboundOut(.head(handshake.extendedConnectRequest(scheme: "https"))), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let response) = unwrapInboundIn(data), !done else { return }
        let result: ClientHandshake.Result
        do {
            result = try handshake.validateExtendedConnect(response)
        } catch {
            logger.debug("handshake refused", metadata: ["status": "\(response.status.code)", "error": "\(error)"])
            fail(WebSocketError.handshakeFailed(error), context: context)
            return
        }
        done = true
        timeout?.cancel()
        timeout = nil
        let driver = ClientUpgradeHandler.makeDriver(result, configuration: webSocketConfiguration, application: application,
                                                     logger: logger, eventLoop: context.eventLoop)
        do {
            try HTTP2StreamConnectionHandler.replace(context: context, codec: codec, driver: driver, early: [])
        } catch {
            for ext in result.extensions { ext.shutdown() }
            promise.fail(error)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(WebSocketError.connectionClosedDuringHandshake, context: context)
        context.fireChannelInactive()
    }

    func fail(_ error: any Error, context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        timeout?.cancel()
        timeout = nil
        promise.fail(error)
        context.close(promise: nil)
    }
}

extension HTTP2ClientConnection {
    /// Opens a stream for one WebSocket and runs its handshake; `promise` gets the WebSocket.
    func openWebSocket(handshake: ClientHandshake, configuration: WebSocketConfiguration, promise: EventLoopPromise<WebSocketConnection>,
                       application: WebSocketApplication, deadline: NIODeadline, logger: Logger) {
        let created = channel.eventLoop.makePromise(of: Channel.self)
        created.futureResult.whenFailure { promise.fail($0) }  // no stream (the connection closed, too many streams)
        multiplexer.createStreamChannel(promise: created) { stream in
            stream.eventLoop.makeCompletedFuture {
                let codec = HTTP2FramePayloadToHTTPClientCodec()
                try stream.pipeline.syncOperations.addHandler(codec)
                try stream.pipeline.syncOperations.addHandler(HTTP2ClientStreamHandler(
                    handshake: handshake, webSocketConfiguration: configuration, promise: promise, application: application,
                    deadline: deadline, codec: codec, logger: logger))
            }
        }
    }
}
