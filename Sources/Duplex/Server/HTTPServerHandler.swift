import DuplexCore
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Serves one TCP connection until it becomes a WebSocket: plain HTTP routes (bodies bounded,
/// handlers run in tasks, answers in request order), the upgrade decided by DuplexCore's
/// handshake rules, and a real HTTP answer for every refusal.
///
/// NIOHTTP1 parses and writes; NIOHTTPTypesHTTP1's conversions turn its heads into
/// swift-http-types' `HTTPRequest` and `HTTPResponse` (the request's HTTP version, which those
/// types do not carry, is read from NIO's head: upgrades need 1.1, and it decides keep-alive).
final class HTTPServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: ServerContext
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    private let encoder: HTTPResponseEncoder
    private let connectionID: UInt64
    private let secure: Bool

    private enum State {
        case idle
        /// A request's head arrived; its body (if any) is arriving.
        case receiving(HTTPRequestHead)
        /// A complete upgrade request is being decided (its hook may run). The decoder parses
        /// nothing after an upgrade request: what follows is the WebSocket's.
        case deciding
        /// A route's task is answering a complete request; reads wait, and parts of pipelined
        /// requests already read are queued.
        case answering
        case closing
    }

    private var state = State.idle
    /// The body of the request being received, once a part of it came.
    private var body: ByteBuffer?
    /// Parts of pipelined requests that arrived while one was being answered.
    private var pending = CircularBuffer<HTTPServerRequestPart>()
    /// A read the channel asked for while a request was being answered: held back until then.
    private var readHeld = false
    private var shuttingDown = false
    /// The task of the route answering the current request, if one is.
    private var routeTask: Task<Void, Never>?
    private var timeout: Scheduled<Void>?

    init(server: ServerContext, decoder: ByteToMessageHandler<HTTPRequestDecoder>, encoder: HTTPResponseEncoder,
         connectionID: UInt64, secure: Bool) {
        self.server = server
        self.decoder = decoder
        self.encoder = encoder
        self.connectionID = connectionID
        self.secure = secure
    }

    /// Adds the HTTP side of a new connection's pipeline (after TLS, if any): NIOHTTP1's request
    /// decoder and response encoder, then the handler, which replaces all three with the
    /// WebSocket's handler on an upgrade. (The fuzz target Fuzz/Net/FuzzHTTPServer.swift drives
    /// this same pipeline on an EmbeddedChannel.)
    static func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, server: ServerContext, secure: Bool) throws {
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        let encoder = HTTPResponseEncoder()
        try pipeline.addHandler(decoder)
        try pipeline.addHandler(encoder)
        try pipeline.addHandler(HTTPServerHandler(server: server, decoder: decoder, encoder: encoder,
                                                  connectionID: server.nextConnectionID(), secure: secure))
    }

    /// The connection's logger, with its id (made when something is logged, not per connection).
    private var logger: Logger { server.logger(connectionID: connectionID) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server shuts down: a connection waiting for its (next) request closes now; one
        // whose request is being answered closes after the answer.
        if event is ServerShutdownEvent {
            shuttingDown = true
            if case .idle = state {
                state = .closing
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        armTimeout(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        routeTask?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        routeTask?.cancel()
        context.fireChannelInactive()
    }

    /// The handshake timeout: a connection must complete a request (and, for a WebSocket,
    /// its upgrade) within it, or it is closed. A route's handler does not count.
    private func armTimeout(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: server.configuration.handshakeTimeout) { [self] in
            logger.debug("handshake timeout")
            state = .closing
            context.close(promise: nil)
        }
    }

    func read(context: ChannelHandlerContext) {
        if case .answering = state {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if case .answering = state {
            pending.append(part)
        } else {
            handle(part, context: context)
        }
    }

    private func handle(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        let limit = server.configuration.maxRequestBodyBytes
        switch part {
        case .head(let head):
            guard case .idle = state else { return }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limit {
                refuseBody(limit: limit, context: context)
                return
            }
            state = .receiving(head)
            body = nil
            if head.version.major > 1 || head.version.minor >= 1, head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))),
                                      promise: nil)
            }
        case .body(var chunk):
            guard case .receiving = state else { return }
            guard (body?.readableBytes ?? 0) + chunk.readableBytes <= limit else {
                refuseBody(limit: limit, context: context)
                return
            }
            if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
        case .end:
            guard case .receiving(let head) = state else { return }
            state = .deciding
            let received = body ?? ByteBuffer()
            body = nil
            respond(to: head, body: received, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard case .closing = state else {
            state = .closing
            let status: HTTPResponse.Status = (error as? HTTPParserError) == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
            logger.debug("bad HTTP request", metadata: ["error": "\(error)"])
            sendError(status, reason: "malformed HTTP request", context: context)
            return
        }
    }

    private func respond(to head: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        let request: HTTPRequest
        do {
            request = try HTTPRequest(head, secure: secure, splitCookie: false)
        } catch {
            sendError(.badRequest, reason: "malformed HTTP request", context: context)
            return
        }
        let target = RouteRequest(head: request, body: body, remoteAddress: context.channel.remoteAddress)
        guard ServerHandshake.isUpgradeRequest(request.headerFields) else {
            serveHTTP(head: head, request: target, context: context)
            return
        }
        let version = (head.version.major, head.version.minor)
        server.admitWebSocket(target, eventLoop: context.eventLoop,
                              validate: { ServerHandshake.validate($0, httpVersion: version, maxHeaderBytes: $1) }) { [self] decision in
            guard context.channel.isActive else { return }
            switch decision {
            case .accept(let accepted):
                accept(accepted, nioHead: head, context: context)
            case .refuse(let status, let reason, let headerFields):
                sendError(status, reason: reason, headerFields: headerFields, context: context)
            }
        }
    }

    private func accept(_ accepted: AcceptedWebSocket, nioHead: HTTPRequestHead, context: ChannelHandlerContext) {
        // An upgrade that completes after the server started shutting down (its request was
        // still arriving, or its upgrade hook still deciding) would open a WebSocket that nobody
        // tells to go away, held until the end of the grace period: refuse it now.
        guard !shuttingDown else {
            server.serverMetrics.refused(status: HTTPResponse.Status.serviceUnavailable.code)
            sendError(.serviceUnavailable, reason: "server shutting down", headerFields: [.retryAfter: "1"], context: context)
            return
        }
        let head = HTTPResponseHead(HTTPResponse(status: .switchingProtocols, headerFields: accepted.headerFields))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)

        let request = accepted.request
        let opening = OpeningRequest(head: nioHead, secure: secure, parameters: request.parameters, route: request.route,
                                     remoteAddress: request.remoteAddress)
        let driver = accepted.makeDriver(server: server, opening: opening, connectionID: connectionID, transport: .http1,
                                         eventLoop: context.eventLoop)
        let handler = ChannelConnectionHandler(driver: driver)
        timeout?.cancel()
        timeout = nil
        do {
            // The encoder leaves first (the 101 response went through it already): the WebSocket
            // handler may write as soon as it is added (a callback endpoint's onOpen), and those
            // bytes must not reach an HTTP encoder. The WebSocket handler goes after this one;
            // then the other HTTP handlers leave, and the decoder forwards any bytes it read past
            // the request to the WebSocket handler. It does so after this read (its removal is
            // deferred), outside any read batch: end that batch with a read-complete, or the
            // WebSocket handler would hold its answers to those bytes for a flush that never comes.
            let pipeline = context.pipeline.syncOperations
            pipeline.removeHandler(encoder, promise: nil)
            try pipeline.addHandler(handler, position: .after(self))
            pipeline.removeHandler(context: context, promise: nil)
            let decoderRemoved = context.eventLoop.makePromise(of: Void.self)
            pipeline.removeHandler(decoder, promise: decoderRemoved)
            let channel = context.channel
            decoderRemoved.futureResult.whenSuccess { channel.pipeline.fireChannelReadComplete() }
        } catch {
            logger.error("upgrade failed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    private func serveHTTP(head: HTTPRequestHead, request: RouteRequest, context: ChannelHandlerContext) {
        // A request asking for another upgrade (an `Upgrade` header with `Connection: upgrade`, or
        // CONNECT) made the HTTP decoder stop parsing after it: answer, then close, rather than
        // keep a connection that would ignore its next requests.
        let keepAlive = head.isKeepAlive && !ServerHandshake.asksToSwitchProtocols(request.head)
        let includeBody = request.method != .head
        switch server.dispatch(request) {
        case .handler(let handler, let request):
            // The handler runs in a task of its own, off the event loop; the connection reads no
            // further request meanwhile (pipelined ones wait) and the handshake timer rests.
            state = .answering
            timeout?.cancel()
            timeout = nil
            // The task is cancelled if the connection closes first.
            let (task, answer) = server.startAnswer(request, with: handler, connectionID: connectionID, eventLoop: context.eventLoop)
            routeTask = task
            answer.assumeIsolated().whenSuccess { [self] response in
                routeTask = nil
                guard context.channel.isActive else { return }
                finish(response, includeBody: includeBody, keepAlive: keepAlive, context: context)
            }
        case .response(let response):
            finish(response, includeBody: includeBody, keepAlive: keepAlive, context: context)
        case .webSocketEndpoint(let upgradeRequired):
            if let fallback = FallbackRequest.classify(request) {
                serveFallback(fallback, nioHead: head, request: request, includeBody: includeBody, keepAlive: keepAlive, context: context)
                return
            }
            finish(upgradeRequired, includeBody: includeBody, keepAlive: keepAlive, context: context)
        }
    }

    /// A request for an endpoint's HTTP fallback transports (``HTTPFallbackExchange``): answered
    /// like a route's (reads wait meanwhile; a long poll is held), or its connection becomes an
    /// SSE stream (this handler steps aside for an ``EventStreamHandler``).
    private func serveFallback(_ classified: FallbackRequest.Classified, nioHead: HTTPRequestHead, request: RouteRequest,
                               includeBody: Bool, keepAlive: Bool, context: ChannelHandlerContext) {
        guard case .fallback(let fallback) = classified, let match = server.router.webSocketEndpoint(for: request.path) else {
            if case .refused(let response) = classified { finish(response, includeBody: includeBody, keepAlive: keepAlive, context: context) }
            return
        }
        state = .answering
        timeout?.cancel()
        timeout = nil
        let exchange = HTTPFallbackExchange(server: server, eventLoop: context.eventLoop, secure: secure)
        let outcome = exchange.answer(fallback, request: request, nioHead: nioHead, endpoint: match)
        outcome.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] result in
            guard context.channel.isActive else { return }
            switch result {
            case .success(.response(let response)):
                finish(response, includeBody: includeBody, keepAlive: keepAlive, context: context)
            case .success(.stream(let target)):
                state = .closing
                do {
                    let pipeline = context.pipeline.syncOperations
                    try pipeline.addHandler(EventStreamHandler(target: target), position: .after(self))
                    pipeline.removeHandler(context: context, promise: nil)
                } catch {
                    context.close(promise: nil)
                }
            case .failure(let error):
                logger.error("fallback request failed", metadata: ["error": "\(error)"])
                finish(.text("internal server error\n", status: .internalServerError), includeBody: includeBody,
                       keepAlive: keepAlive, context: context)
            }
        }
    }

    /// Writes a route's answer; then the connection closes, or serves its next request.
    private func finish(_ response: RouteResponse, includeBody: Bool, keepAlive: Bool, context: ChannelHandlerContext) {
        let keepAlive = keepAlive && !shuttingDown
        write(response, includeBody: includeBody, keepAlive: keepAlive, context: context)
        guard keepAlive else {
            state = .closing
            return
        }
        state = .idle
        armTimeout(context: context)
        // Pipelined requests that came meanwhile, in order, until one is being answered again;
        // then the reads held back.
        while acceptsParts, let part = pending.popFirst() {
            handle(part, context: context)
        }
        if case .answering = state { return }
        releaseHeldRead(context: context)
    }

    /// Whether the next request part can be handled now (not while a request is being answered).
    private var acceptsParts: Bool {
        switch state {
        case .idle, .receiving: true
        case .deciding, .answering, .closing: false
        }
    }

    /// Passes on the read held back while a route answered.
    private func releaseHeldRead(context: ChannelHandlerContext) {
        guard readHeld else { return }
        readHeld = false
        context.read()
    }

    /// A body over ``WebSocketServer/Configuration/maxRequestBodyBytes``: 413, then the connection
    /// closes. The answer goes out first with the sending side shut (the client may still be
    /// sending the body; closing with its bytes unread would reset the connection and could
    /// destroy the answer), and the connection closes when the client does, or after a second.
    private func refuseBody(limit: Int, context: ChannelHandlerContext) {
        logger.debug("request body too large", metadata: ["limit": "\(limit)"])
        state = .closing
        body = nil
        pending.removeAll()
        let response = RouteResponse.text("request body over \(limit) bytes\n", status: .contentTooLarge)
        let written = writeResponse(response, includeBody: true, keepAlive: false, context: context)
        written.assumeIsolated().whenComplete { _ in
            let halfClosed = context.eventLoop.makePromise(of: Void.self)
            context.close(mode: .output, promise: halfClosed)
            halfClosed.futureResult.assumeIsolated().whenFailure { _ in context.close(promise: nil) }
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { context.close(promise: nil) }
        }
        releaseHeldRead(context: context)
    }

    /// Answers with a status and a one-line reason, then closes the connection.
    private func sendError(_ status: HTTPResponse.Status, reason: String, headerFields: HTTPFields = [:],
                           context: ChannelHandlerContext) {
        logger.debug("refused request", metadata: ["status": "\(status.code)", "reason": "\(reason)"])
        var response = RouteResponse.text(reason + "\n", status: status)
        response.headerFields.append(contentsOf: headerFields)
        state = .closing
        write(response, includeBody: true, keepAlive: false, context: context)
    }

    private func write(_ response: RouteResponse, includeBody: Bool, keepAlive: Bool, context: ChannelHandlerContext) {
        let done = writeResponse(response, includeBody: includeBody, keepAlive: keepAlive, context: context)
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Writes and flushes a response with its `Content-Length` and `Connection` fields.
    private func writeResponse(_ response: RouteResponse, includeBody: Bool, keepAlive: Bool,
                               context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        var fields = response.headerFields
        fields[.contentLength] = "\(response.body.readableBytes)"
        fields[.connection] = keepAlive ? "keep-alive" : "close"
        let head = HTTPResponseHead(HTTPResponse(status: response.status, headerFields: fields))
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if includeBody && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        return context.writeAndFlush(wrapOutboundOut(.end(nil)))
    }
}
