import DuplexCore
import Logging
import NIOCore
import NIOHTTP1

/// Serves one TCP connection until it becomes a WebSocket: plain HTTP routes, the upgrade
/// decided by DuplexCore's handshake rules, and a real HTTP answer for every refusal.
final class HTTPServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: ServerContext
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>
    private let encoder: HTTPResponseEncoder
    private let connectionID: UInt64

    private enum State {
        case idle
        case receiving(HTTPRequestHead)
        case deciding
        case closing
    }

    private var state = State.idle
    private var timeout: Scheduled<Void>?

    init(server: ServerContext, decoder: ByteToMessageHandler<HTTPRequestDecoder>, encoder: HTTPResponseEncoder,
         connectionID: UInt64) {
        self.server = server
        self.decoder = decoder
        self.encoder = encoder
        self.connectionID = connectionID
    }

    /// The connection's logger, with its id (made when something is logged, not per connection).
    private var logger: Logger {
        var logger = server.logger
        logger[metadataKey: "connection_id"] = "\(connectionID)"
        return logger
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server shuts down: a connection waiting for its (next) request closes now.
        if event is ServerShutdownEvent, case .idle = state {
            state = .closing
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        armTimeout(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
    }

    /// The handshake timeout: a connection must complete a request (and, for a WebSocket,
    /// its upgrade) within it, or it is closed.
    private func armTimeout(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: server.configuration.handshakeTimeout) { [self] in
            logger.debug("handshake timeout")
            state = .closing
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .idle = state else { return }
            state = .receiving(head)
        case .body:
            break  // bodies are not used by any route; the decoder bounds nothing here, so GET only
        case .end:
            guard case .receiving(let head) = state else { return }
            state = .deciding
            respond(to: head, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard case .closing = state else {
            state = .closing
            let status: HTTPResponseStatus = (error as? HTTPParserError) == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
            logger.debug("bad HTTP request", metadata: ["error": "\(error)"])
            sendError(status, reason: "malformed HTTP request", context: context)
            return
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let headers = HeaderList(head.headers.map { (name: $0.name, value: $0.value) })
        let request = ServerHandshake.Request(
            method: head.method.rawValue, uri: head.uri,
            versionMajor: head.version.major, versionMinor: head.version.minor, headers: headers
        )
        let path = request.path
        let remote = context.channel.remoteAddress

        guard ServerHandshake.isUpgradeRequest(headers) else {
            serveHTTP(head: head, request: request, context: context)
            return
        }
        guard let endpoint = server.router.webSockets[path] else {
            sendError(.notFound, reason: "no WebSocket endpoint at \(path)", context: context)
            return
        }
        let upgrade: ServerHandshake.UpgradeRequest
        switch ServerHandshake.validate(request, maxHeaderBytes: server.configuration.maxHandshakeHeaderBytes) {
        case .failure(let error):
            sendError(HTTPResponseStatus(statusCode: error.status), reason: error.description,
                      extraHeaders: ServerHandshake.rejection(for: error), context: context)
            return
        case .success(let value):
            upgrade = value
        }
        guard endpoint.origins.permits(upgrade.origin) else {
            sendError(.forbidden, reason: "origin not allowed", context: context)
            return
        }
        let wsRequest = WebSocketRequest(uri: request.uri, path: path, query: request.query, headers: headers, remoteAddress: remote)
        guard let hook = endpoint.onUpgrade else {
            accept(upgrade, endpoint: endpoint, request: wsRequest, userData: nil, context: context)
            return
        }
        let loop = context.eventLoop
        let decision = loop.makeFutureWithTask { await hook(wsRequest) }
        decision.assumeIsolated().whenSuccess { [self] decision in
            guard context.channel.isActive else { return }
            switch decision {
            case .accept(let userData):
                accept(upgrade, endpoint: endpoint, request: wsRequest, userData: userData, context: context)
            case .reject(let status, let reason):
                sendError(HTTPResponseStatus(statusCode: status), reason: reason, context: context)
            }
        }
    }

    private func accept(_ upgrade: ServerHandshake.UpgradeRequest, endpoint: WebSocketEndpoint, request: WebSocketRequest,
                        userData: (any Sendable)?, context: ChannelHandlerContext) {
        let subprotocol = endpoint.selectSubprotocol(from: upgrade.subprotocols)
        let acceptance = ServerHandshake.accept(upgrade, subprotocol: subprotocol, extensions: endpoint.extensions)
        var headers = HTTPHeaders()
        for field in acceptance.headers { headers.add(name: field.name, value: field.value) }
        let head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)

        let settings = server.endpointSettings[request.path]!
        let info = ConnectionInfo(connectionID: connectionID, subprotocol: subprotocol, request: request, userData: userData)
        let connection = Connection(role: .server, configuration: settings.coreConfiguration, extensions: acceptance.extensions)
        let loop = context.eventLoop
        let driver = ConnectionDriver(connection: connection, settings: settings, info: info, application: endpoint.application,
                                      eventLoop: loop, handlerExecutor: server.handlerExecutor(for: loop))
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

    private func serveHTTP(head: HTTPRequestHead, request: ServerHandshake.Request, context: ChannelHandlerContext) {
        let path = request.path
        var response: HTTPResponse
        if let route = server.router.routes[path], head.method == .GET || head.method == .HEAD {
            let info = HTTPRequestInfo(method: head.method.rawValue, uri: head.uri, path: path, query: request.query,
                                       headers: request.headers, remoteAddress: context.channel.remoteAddress)
            response = route(info)
        } else if server.router.routes[path] != nil {
            response = .text("method not allowed\n", status: 405)
            response.headers.add(name: "Allow", value: "GET, HEAD")
        } else if server.router.webSockets[path] != nil {
            response = .text("this is a WebSocket endpoint: send Upgrade: websocket\n", status: 426)
            for field in ServerHandshake.upgradeRequiredHeaders { response.headers.add(name: field.name, value: field.value) }
        } else {
            response = .text("not found\n", status: 404)
        }
        // A request asking for another upgrade (an `Upgrade` header with `Connection: upgrade`, or
        // CONNECT) made the HTTP decoder stop parsing after it: answer, then close, rather than
        // keep a connection that would ignore its next requests.
        let askedForUpgrade = head.method == .CONNECT
            || (request.headers.first("Upgrade") != nil && request.headers.containsToken("upgrade", in: "Connection"))
        let keepAlive = head.isKeepAlive && !askedForUpgrade
        write(response, includeBody: head.method != .HEAD, keepAlive: keepAlive, context: context)
        if keepAlive {
            state = .idle
            armTimeout(context: context)
        }
    }

    /// Answers with a status and a one-line reason, then closes the connection.
    private func sendError(_ status: HTTPResponseStatus, reason: String, extraHeaders: HeaderList = HeaderList(),
                           context: ChannelHandlerContext) {
        logger.debug("refused request", metadata: ["status": "\(status.code)", "reason": "\(reason)"])
        var response = HTTPResponse.text(reason + "\n", status: Int(status.code))
        for field in extraHeaders { response.headers.add(name: field.name, value: field.value) }
        state = .closing
        write(response, includeBody: true, keepAlive: false, context: context)
    }

    private func write(_ response: HTTPResponse, includeBody: Bool, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        for field in response.headers { headers.add(name: field.name, value: field.value) }
        headers.replaceOrAdd(name: "Content-Length", value: "\(response.body.readableBytes)")
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if includeBody && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }
}
