import Logging
import NIOCore

/// A client's opening-handshake handler, over HTTP/1.1 (``ClientUpgradeHandler``) or an HTTP/2
/// stream (``HTTP2ClientStreamHandler``): both send their request once the channel is active and
/// fail the attempt at the handshake's deadline.
protocol ClientHandshakeHandler: AnyObject, ChannelInboundHandler {
    var deadline: NIODeadline { get }
    var timeout: Scheduled<Void>? { get set }
    var logger: Logger { get }
    func sendRequest(context: ChannelHandlerContext)
    func fail(_ error: any Error, context: ChannelHandlerContext)
}

extension ClientHandshakeHandler {
    func handlerAdded(context: ChannelHandlerContext) {
        timeout = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            logger.debug("handshake timeout")
            fail(WebSocketError.handshakeTimeout, context: context)
        }
        if context.channel.isActive { sendRequest(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        sendRequest(context: context)
        context.fireChannelActive()
    }
}

/// A failed TCP connect as the client reports it: NIO's connect timeout is the handshake's timeout.
func clientConnectFailure(_ error: any Error) -> any Error {
    if case .connectTimeout = error as? ChannelError { return WebSocketError.handshakeTimeout }
    return error
}
