import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// The channel handler of an SSE stream: the HTTP connection's last handler once its GET was
/// accepted (the HTTP server handler steps aside, as it does for an upgrade). It writes the
/// response head, tells the session (on its loop) that the stream is there, passes on the
/// channel's writability, and tells the session when the client goes away. Anything the client
/// sends on this connection afterwards is ignored.
final class EventStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let target: EventStreamTarget

    /// Water marks of the stream's channel: past the high one, events wait in the session's
    /// outbox (where they count for the connection's backpressure) instead of the channel.
    static let waterMarks = ChannelOptions.Types.WriteBufferWaterMark(low: 32 << 10, high: 128 << 10)

    init(target: EventStreamTarget) {
        self.target = target
    }

    private var session: NIOLoopBound<HTTPSession> { target.session }

    func handlerAdded(context: ChannelHandlerContext) {
        var fields = HTTPSession.eventFields(.eventStream)
        fields.append(contentsOf: target.headerFields)
        fields[HTTPField.Name("X-Accel-Buffering")!] = "no"  // nginx: do not buffer the stream
        let head = HTTPResponseHead(HTTPResponse(status: .ok, headerFields: fields))
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        context.channel.setOption(ChannelOptions.writeBufferWaterMark, value: Self.waterMarks).whenFailure { _ in }
        let port = EventStreamPort(channel: context.channel)
        let session = self.session, lastEventID = target.lastEventID, announce = target.announce
        session.eventLoop.execute { session.value.attach(stream: port, lastEventID: lastEventID, announce: announce) }
        context.read()  // the HTTP handler held reads while it answered; reading shows the client's close
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            let session = self.session
            session.eventLoop.execute { session.value.streamWritable() }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let session = self.session
        let channel = ObjectIdentifier(context.channel)
        session.eventLoop.execute { session.value.streamEnded(channel: channel) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
