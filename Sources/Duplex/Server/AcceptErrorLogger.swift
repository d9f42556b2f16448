import Logging
import NIOCore

/// The last handler of a server's listening channel: logs what accepting failed with (EMFILE
/// when file descriptors run out, ...) instead of letting it reach the end of the pipeline.
/// NIO's `AcceptBackoffHandler` before it has already paused accepting for the retry delay; the
/// listening socket stays open (NIO closes it only for errors other than resource exhaustion).
final class AcceptErrorLogger: ChannelInboundHandler {
    typealias InboundIn = any Channel

    private let logger: Logger
    private let retryDelay: TimeAmount

    init(logger: Logger, retryDelay: TimeAmount) {
        self.logger = logger
        self.retryDelay = retryDelay
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.error("accepting a connection failed; the open connections go on, accepting resumes shortly",
                     metadata: ["error": "\(error)", "retry_in_ms": "\(retryDelay.nanoseconds / 1_000_000)"])
    }
}
