import DuplexCore
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

extension HTTPServerBuilder {
    /// Hummingbird's HTTP/1.1 server, with Duplex's WebSocket upgrades on the application's own
    /// routes (``Hummingbird/RouterMethods/webSocket(_:upgrader:endpoint:onUpgrade:)``):
    ///
    /// ```swift
    /// let app = Application(router: router, server: .duplexHTTP1(), configuration: .init(address: .hostname("0.0.0.0", port: 8080)))
    /// ```
    ///
    /// The same pipeline as `.http1(configuration:)` (NIOHTTP1's codec, HTTPTypes' conversion,
    /// the additional handlers, idle timeout and decoder limits of `configuration`), but one that
    /// can leave the connection to a WebSocket: its decoder forwards the bytes read past an
    /// upgrade request, and a connection whose upgrade request was refused closes after the answer.
    public static func duplexHTTP1(configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        .init { responder in DuplexHTTP1Channel(responder: responder, configuration: configuration) }
    }
}

/// Hummingbird's HTTP/1.1 child channel, able to hand its connection to a Duplex WebSocket
/// (built by ``HummingbirdCore/HTTPServerBuilder/duplexHTTP1(configuration:)``).
public struct DuplexHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    /// A connection: its HTTP parts as an async channel, and the HTTP handlers an upgrade removes.
    public struct Value: ServerChildChannelValue {
        let asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>
        let connection: UpgradableConnection
        /// The connection's channel.
        public var channel: any Channel { asyncChannel.channel }
    }

    /// The application's responder (its router and middleware).
    public let responder: HTTPChannelHandler.Responder
    /// The HTTP/1.1 settings, as Hummingbird's `HTTP1Channel` has them.
    public let configuration: HTTP1Channel.Configuration

    /// A child channel answering with `responder`.
    public init(responder: @escaping HTTPChannelHandler.Responder, configuration: HTTP1Channel.Configuration = .init()) {
        self.responder = responder
        self.configuration = configuration
    }

    /// Sets up a new connection's pipeline: the HTTP decoder (nearest the socket, forwarding the
    /// bytes past an upgrade request when it leaves), encoder, HTTPTypes codec, the additional
    /// handlers, Hummingbird's connection state handler (idle timeout, quiescing), then the
    /// ``UpgradeGuard`` that stays, and the async channel.
    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = configuration.httpDecoder.maxHeaderFieldSize
            limits.maxHeaderListSize = configuration.httpDecoder.maxHeaderListSize
            limits.maxHeaderFieldCount = configuration.httpDecoder.maxHeaderFieldCount
            let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits))
            let httpHandlers: [any RemovableChannelHandler] = [decoder, HTTPResponseEncoder(configuration: .init()),
                                                               HTTP1ToHTTPServerCodec(secure: false)]
                + configuration.additionalChannelHandlers()
                + [HTTPConnectionStateHandler(idleTimeout: configuration.idleTimeout.map { .init($0) }, logger: logger)]
            let sync = channel.pipeline.syncOperations
            for handler in httpHandlers { try sync.addHandler(handler) }
            try sync.addHandler(UpgradeGuard())
            let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            let connection = UpgradableConnection(channel: channel, httpHandlers: NIOLoopBound(httpHandlers, eventLoop: channel.eventLoop))
            return Value(asyncChannel: asyncChannel, connection: connection)
        }
    }

    /// Serves the connection's requests (Hummingbird's loop), with the connection known to the
    /// WebSocket routes its requests reach.
    public func handle(value: Value, logger: Logger) async {
        await UpgradableConnection.$current.withValue(value.connection) {
            await handleHTTP(asyncChannel: value.asyncChannel, logger: logger)
        }
    }
}

/// The connection a request came on, as a WebSocket route needs it: its channel and the HTTP
/// handlers an upgrade removes (nearest the socket first).
final class UpgradableConnection: Sendable {
    /// The connection of the request being answered in this task (set by ``DuplexHTTP1Channel``).
    @TaskLocal static var current: UpgradableConnection?

    let channel: any Channel
    let httpHandlers: NIOLoopBound<[any RemovableChannelHandler]>

    init(channel: any Channel, httpHandlers: NIOLoopBound<[any RemovableChannelHandler]>) {
        self.channel = channel
        self.httpHandlers = httpHandlers
    }
}

/// Between Hummingbird's HTTP handlers and its async channel, for the connection's whole life:
/// - the answer to a request that asked to switch protocols and did not (a refusal, another
///   route's answer, a 404) closes the connection once written: NIO's decoder reads nothing
///   after such a request, as Duplex's own server does;
/// - once a WebSocket took the connection over (Duplex wrote the real 101 below the HTTP
///   handlers), the route's `101` response and anything Hummingbird writes after it are dropped
///   here (their writes succeed), so that no HTTP part reaches the WebSocket's bytes.
final class UpgradeGuard: ChannelDuplexHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var askedToSwitch = false
    private var answeringWithoutSwitch = false
    private var switched = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let request) = unwrapInboundIn(data) {
            askedToSwitch = ServerHandshake.asksToSwitchProtocols(request)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !switched else {
            promise?.succeed()
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(let response) where response.status == .switchingProtocols && askedToSwitch:
            switched = true
            promise?.succeed()
        case .head(var response) where response.status.kind != .informational:
            answeringWithoutSwitch = askedToSwitch
            guard askedToSwitch else { return context.write(data, promise: promise) }
            response.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(response)), promise: promise)
        case .end where answeringWithoutSwitch:
            answeringWithoutSwitch = false
            context.writeAndFlush(data).assumeIsolated().whenComplete { result in
                context.close(promise: nil)
                promise?.completeWith(result)
            }
        default:
            context.write(data, promise: promise)
        }
    }
}
