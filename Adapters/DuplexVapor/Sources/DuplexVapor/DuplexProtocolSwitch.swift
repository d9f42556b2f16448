import Duplex
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Vapor

/// Vapor's upgrade of a connection to an accepted Duplex WebSocket (the `Response.upgrader` of
/// the route's 101). Vapor's `HTTPServerUpgradeHandler` asks it for the 101's header fields,
/// writes the 101 through its HTTP handlers, removes them, then lets it take the channel over;
/// until then, Vapor buffers the bytes read from the socket (and replays them once done).
struct DuplexProtocolSwitch: Vapor.Upgrader {
    let upgrader: DuplexUpgrader
    let acceptance: DuplexUpgrader.Acceptance

    func applyUpgrade(req: Request, res: Response) -> any HTTPServerProtocolUpgrader {
        DuplexProtocolUpgrader(upgrader: upgrader, acceptance: acceptance)
    }
}

/// The NIO side of ``DuplexProtocolSwitch``, on the connection's event loop.
final class DuplexProtocolUpgrader: HTTPServerProtocolUpgrader {
    let supportedProtocol = "websocket"
    let requiredUpgradeHeaders: [String] = []
    private let upgrader: DuplexUpgrader
    private let acceptance: DuplexUpgrader.Acceptance
    private var leftovers: LeftoverBytesHandler?

    init(upgrader: DuplexUpgrader, acceptance: DuplexUpgrader.Acceptance) {
        self.upgrader = upgrader
        self.acceptance = acceptance
    }

    /// The 101's header fields, Duplex's handshake's. Before the 101 goes out, a
    /// ``LeftoverBytesHandler`` goes right after NIO's HTTP decoder: the bytes the client sent past
    /// the request in the same read are in that decoder, which forwards them when Vapor removes
    /// it, before the WebSocket's handler is there.
    func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead,
                              initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            let leftovers = LeftoverBytesHandler()
            try pipeline.addHandler(leftovers, position: .after(decoder))
            self.leftovers = leftovers
            return HTTPHeaders(acceptance.headerFields)
        }
    }

    /// After the 101 and the removal of Vapor's HTTP handlers: the WebSocket's handler goes last,
    /// then the leftover bytes reach it, and a read-complete after Vapor's own buffered reads ends
    /// their batch (the WebSocket flushes its answers on a read-complete).
    func upgrade(context: ChannelHandlerContext, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<Void> {
        let channel = context.channel
        do {
            try upgrader.takeOver(acceptance, channel: channel)
        } catch {
            // The 101 went out but no WebSocket runs: nothing can use the connection any more.
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
        let removed = leftovers.map { channel.pipeline.syncOperations.removeHandler($0) } ?? channel.eventLoop.makeSucceededVoidFuture()
        return removed.always { _ in
            channel.eventLoop.execute { channel.pipeline.fireChannelReadComplete() }
        }
    }
}

/// Keeps the bytes NIO's HTTP decoder forwards when it leaves (those read past the upgrade
/// request), and passes them on when removed itself, once the WebSocket's handler is in place.
final class LeftoverBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private var kept: [ByteBuffer] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        kept.append(unwrapInboundIn(data))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        let bytes = kept
        kept = []
        for buffer in bytes { context.fireChannelRead(wrapInboundOut(buffer)) }
    }
}
