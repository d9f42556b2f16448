import DuplexCore
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// The client's opening handshake over HTTP/1.1: sends the upgrade request once the channel is
/// active (after the proxy tunnel and TLS, if any), checks the response with DuplexCore's
/// ``ClientHandshake``, then replaces the HTTP handlers with a ``WebSocketHandler`` that hands
/// the ``WebSocketConnection`` to the caller through `promise`. Bytes read past the 101 response reach
/// the WebSocket handler first thing.
///
/// It also owns the handshake's deadline and turns every way the attempt can end early (timeout,
/// error, closed connection) into a failure of `promise`; the first one wins.
final class ClientUpgradeHandler: ClientHandshakeHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private enum State {
        case waitingForActive
        case awaitingResponse
        /// The response head passed the checks; switching at its `.end`.
        case accepted(ClientHandshake.Result)
        /// The HTTP handlers are leaving.
        case upgrading(ClientHandshake.Result)
        case done
    }

    private let handshake: ClientHandshake
    private let webSocketConfiguration: WebSocketConfiguration
    private let promise: EventLoopPromise<WebSocketConnection>
    private let application: WebSocketApplication
    let deadline: NIODeadline
    private let encoder: HTTPRequestEncoder
    private let decoder: ByteToMessageHandler<HTTPResponseDecoder>
    let logger: Logger
    private var state = State.waitingForActive
    var timeout: Scheduled<Void>?
    private var pendingReads: [NIOAny] = []

    /// - Parameters:
    ///   - promise: failed when the attempt fails; the application succeeds it once the
    ///     WebSocket handler is in place.
    ///   - application: `.handOff(promise)`, or callbacks whose `onOpen` succeeds `promise`.
    init(handshake: ClientHandshake, webSocketConfiguration: WebSocketConfiguration,
         promise: EventLoopPromise<WebSocketConnection>, application: WebSocketApplication, deadline: NIODeadline,
         encoder: HTTPRequestEncoder, decoder: ByteToMessageHandler<HTTPResponseDecoder>, logger: Logger) {
        self.handshake = handshake
        self.webSocketConfiguration = webSocketConfiguration
        self.promise = promise
        self.application = application
        self.deadline = deadline
        self.encoder = encoder
        self.decoder = decoder
        self.logger = logger
    }

    func sendRequest(context: ChannelHandlerContext) {
        guard case .waitingForActive = state else { return }
        state = .awaitingResponse
        let head: HTTPRequestHead
        do {
            head = try HTTPRequestHead(handshake.request)
        } catch {
            fail(error, context: context)
            return
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .upgrading = state {
            // Bytes the decoder read past the 101 (forwarded as it leaves), or read from the
            // socket since: they belong to the WebSocket handler. Kept as they are, not unwrapped.
            pendingReads.append(data)
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .awaitingResponse = state else { return }
            let response: HTTPResponse
            do {
                response = try HTTPResponse(head)
            } catch {
                fail(error, context: context)  // a status over 999
                return
            }
            do {
                state = .accepted(try handshake.validate(response))
            } catch {
                logger.debug("handshake refused", metadata: ["status": "\(head.status.code)", "error": "\(error)"])
                fail(WebSocketError.handshakeFailed(error), context: context)
            }
        case .body:
            break
        case .end:
            guard case .accepted(let result) = state else { return }
            removeHTTPHandlers(result, context: context)
        }
    }

    /// First step of the switch: the HTTP handlers leave. The response decoder also watches
    /// writes (to pair requests with responses), so nothing else may be written through it: the
    /// WebSocket handler, which writes as soon as it reads, comes only once the decoder is gone.
    private func removeHTTPHandlers(_ result: ClientHandshake.Result, context: ChannelHandlerContext) {
        state = .upgrading(result)
        let pipeline = context.pipeline.syncOperations
        pipeline.removeHandler(encoder, promise: nil)
        let removed = context.eventLoop.makePromise(of: Void.self)
        pipeline.removeHandler(decoder, promise: removed)
        removed.futureResult.assumeIsolated().whenComplete { [self] outcome in
            switch outcome {
            case .success: addWebSocketHandler(result, context: context)
            case .failure(let error): fail(error, context: context)
            }
        }
    }

    /// Second step: the WebSocket handler takes this handler's place and gets the bytes read so far.
    private func addWebSocketHandler(_ result: ClientHandshake.Result, context: ChannelHandlerContext) {
        guard case .upgrading = state else { return }
        state = .done
        timeout?.cancel()
        timeout = nil
        let driver = Self.makeDriver(result, configuration: webSocketConfiguration, application: application, logger: logger,
                                     eventLoop: context.eventLoop)
        let handler = ChannelConnectionHandler(driver: driver)
        do {
            try context.pipeline.syncOperations.addHandler(handler, position: .after(self))
        } catch {
            for ext in result.extensions { ext.shutdown() }
            promise.fail(context.channel.isActive ? error : WebSocketError.connectionClosedDuringHandshake)
            context.close(promise: nil)
            return
        }
        let reads = pendingReads
        pendingReads = []
        if !reads.isEmpty {
            for data in reads { context.fireChannelRead(data) }
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// The driver of a client connection whose handshake succeeded (over HTTP/1.1 or an HTTP/2 stream).
    static func makeDriver(_ result: ClientHandshake.Result, configuration: WebSocketConfiguration,
                           application: WebSocketApplication, logger: Logger, eventLoop: any EventLoop) -> ConnectionDriver {
        let settings = ConnectionSettings(role: .client, configuration: configuration, metrics: .client, logger: logger)
        let info = ConnectionInfo(connectionID: 0, subprotocol: result.subprotocol)
        let connection = Connection(role: .client, configuration: settings.coreConfiguration, extensions: result.extensions)
        return ConnectionDriver(connection: connection, settings: settings, info: info, application: application,
                                eventLoop: eventLoop)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("handshake error", metadata: ["error": "\(error)"])
        fail(error, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // While upgrading, the handshake has succeeded: the WebSocket handler still comes, gets
        // what was read (a message, a close frame) and then reports the closed connection.
        if case .upgrading = state {} else {
            fail(WebSocketError.connectionClosedDuringHandshake, context: context)
        }
        context.fireChannelInactive()
    }

    func fail(_ error: any Error, context: ChannelHandlerContext) {
        switch state {
        case .accepted(let result), .upgrading(let result):
            for ext in result.extensions { ext.shutdown() }
        default:
            break
        }
        if case .done = state { return }
        state = .done
        timeout?.cancel()
        timeout = nil
        promise.fail(error)
        context.close(promise: nil)
    }
}

extension WebSocketMetrics {
    /// The metrics every client connection shares.
    static let client = WebSocketMetrics(role: .client)
}
