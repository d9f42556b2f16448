import DuplexCore
import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes
import NIOHTTPTypesHTTP2

/// Serves one HTTP/2 stream of a server (after NIOHTTPTypesHTTP2's codec, which turns HEADERS and
/// DATA into `HTTPRequestPart`s):
/// - an extended CONNECT (`:protocol`, RFC 8441) goes through the server's WebSocket admission, the
///   same as an HTTP/1.1 upgrade (endpoint, handshake rules, Origin, subprotocol, extensions,
///   `onUpgrade`); accepted, it is answered `200` and the stream becomes the WebSocket's transport
///   (``HTTP2StreamConnectionHandler``); refused, it is answered with the HTTP/1.1 status;
/// - any other request is a plain HTTP request, answered by the routes.
final class HTTP2ServerStreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    private let server: ServerContext
    private let connectionID: UInt64

    private enum State {
        case idle
        /// A plain request's head arrived; its body is arriving.
        case receiving(HTTPRequest)
        /// A WebSocket request is being decided (its hook may run).
        case deciding
        /// A route's task is answering, or the answer is written.
        case answering
        case done
    }

    private var state = State.idle
    private var body: ByteBuffer?
    /// WebSocket bytes the peer sent before its request was decided, handed to the connection after.
    private var early: [ByteBuffer] = []
    private var earlyBytes = 0
    private var routeTask: Task<Void, Never>?

    private let codec: HTTP2FramePayloadToHTTPServerCodec

    init(server: ServerContext, connectionID: UInt64, codec: HTTP2FramePayloadToHTTPServerCodec) {
        self.server = server
        self.connectionID = connectionID
        self.codec = codec
    }

    /// The stream's logger, with its id (made when something is logged).
    private var logger: Logger { server.logger(connectionID: connectionID) }

    func channelInactive(context: ChannelHandlerContext) {
        routeTask?.cancel()
        routeTask = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            guard case .idle = state else { return reset(context: context) }
            if request.method == .connect, request.extendedConnectProtocol != nil {
                state = .deciding
                admit(request, context: context)
            } else {
                state = .receiving(request)
            }
        case .body(let chunk):
            switch state {
            case .receiving:
                let limit = server.configuration.maxRequestBodyBytes
                guard (body?.readableBytes ?? 0) + chunk.readableBytes <= limit else {
                    body = nil
                    state = .answering
                    respond(.text("request body over \(limit) bytes\n", status: .contentTooLarge), includeBody: true,
                            context: context)
                    return
                }
                var chunk = chunk
                if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
            case .deciding:
                // A client sends WebSocket bytes only after the 200 (RFC 8441 §5); a few early ones are
                // kept, a flood is refused.
                earlyBytes += chunk.readableBytes
                guard earlyBytes <= server.configuration.maxHandshakeHeaderBytes else { return reset(context: context) }
                early.append(chunk)
            default:
                break
            }
        case .end:
            switch state {
            case .receiving(let head):
                state = .answering
                let request = RouteRequest(head: head, body: body ?? ByteBuffer(), remoteAddress: context.channel.parent?.remoteAddress)
                body = nil
                serve(request, context: context)
            case .deciding:
                // The client gave up on its WebSocket before the answer.
                reset(context: context)
            default:
                break
            }
        }
    }

    private func reset(context: ChannelHandlerContext) {
        state = .done
        context.close(promise: nil)
    }

    // MARK: - WebSocket

    private func admit(_ head: HTTPRequest, context: ChannelHandlerContext) {
        let request = RouteRequest(head: head, remoteAddress: context.channel.parent?.remoteAddress)
        server.admitWebSocket(request, eventLoop: context.eventLoop,
                              validate: { ServerHandshake.validateExtendedConnect($0, maxHeaderBytes: $1) }) { [self] decision in
            guard context.channel.isActive else { return }
            switch decision {
            case .accept(let accepted):
                accept(accepted, head: head, context: context)
            case .refuse(let status, let reason, let headerFields):
                logger.debug("refused WebSocket stream", metadata: ["status": "\(status.code)", "reason": "\(reason)"])
                var response = RouteResponse.text(reason + "\n", status: status)
                response.headerFields.append(contentsOf: headerFields)
                state = .answering
                respond(response, includeBody: true, context: context)
            }
        }
    }

    private func accept(_ accepted: AcceptedWebSocket, head: HTTPRequest, context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: accepted.headerFields))),
                              promise: nil)
        let request = accepted.request
        let opening = OpeningRequest(request: .http2(head), parameters: request.parameters, route: request.route,
                                     remoteAddress: request.remoteAddress)
        let driver = accepted.makeDriver(server: server, opening: opening, connectionID: connectionID, transport: .h2,
                                         eventLoop: context.eventLoop)
        state = .done
        do {
            // The codec leaves (the 200 went through it): from here the stream's DATA frames are
            // the WebSocket's bytes, read and written as frames by the sink.
            try HTTP2StreamConnectionHandler.replace(context: context, codec: codec, driver: driver, early: early)
            early = []
        } catch {
            logger.error("WebSocket stream setup failed", metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: - Plain HTTP

    private func serve(_ request: RouteRequest, context: ChannelHandlerContext) {
        let includeBody = request.method != .head
        switch server.dispatch(request) {
        case .handler(let handler, let request):
            let (task, answer) = server.startAnswer(request, with: handler, connectionID: connectionID, eventLoop: context.eventLoop)
            routeTask = task
            answer.assumeIsolated().whenSuccess { [self] response in
                routeTask = nil
                guard context.channel.isActive else { return }
                respond(response, includeBody: includeBody, context: context)
            }
        case .response(let response), .webSocketEndpoint(upgradeRequired: let response):
            // HTTP fallback sessions are HTTP/1.1's (a browser with h2 opens WebSockets over it).
            respond(response, includeBody: includeBody, context: context)
        }
    }

    /// Fields HTTP/2 forbids (RFC 9113 §8.2.2): they are about one HTTP/1.1 connection.
    private static let connectionSpecificFields: [HTTPField.Name] = [.connection, .upgrade, .transferEncoding, HTTPField.Name("keep-alive")!, HTTPField.Name("proxy-connection")!]

    /// Writes a response with its `Content-Length` and ends the stream; the connection stays,
    /// whatever the answer.
    private func respond(_ response: RouteResponse, includeBody: Bool, context: ChannelHandlerContext) {
        var fields = response.headerFields.filter { !Self.connectionSpecificFields.contains($0.name) }
        fields[.contentLength] = "\(response.body.readableBytes)"
        context.write(wrapOutboundOut(.head(HTTPResponse(status: response.status, headerFields: fields))), promise: nil)
        if includeBody && response.body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(response.body)), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        state = .done
    }
}
