import NIOCore

/// A channel handler that carries a driver, over a TCP/TLS channel (``ChannelConnectionHandler``)
/// or an HTTP/2 stream (``HTTP2StreamConnectionHandler``): the channel events both forward alike.
protocol DriverChannelHandler: AnyObject, ChannelDuplexHandler, FrameSink {
    var driver: ConnectionDriver { get }
    var context: ChannelHandlerContext? { get set }
    var heldRead: HeldRead { get set }
}

extension DriverChannelHandler {
    /// The handler is in its pipeline: the driver starts with this sink.
    func startDriver(context: ChannelHandlerContext) {
        self.context = context
        driver.start(sink: self)
        if !context.channel.isActive {
            // Added to a channel that already closed (a client whose server sent its last bytes
            // and hung up during the upgrade): the bytes read so far are handed in first, in this tick.
            context.eventLoop.assumeIsolated().execute { [driver] in driver.transportClosed() }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        driver.transportClosed()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        driver.transportClosed()
        context.fireChannelInactive()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        driver.readComplete()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        driver.channelError(error, context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        driver.channelEvent(event, context: context)
    }

    func read(context: ChannelHandlerContext) {
        heldRead.read(context: context, driver: driver)
    }

    func readIfHeld() {
        heldRead.release(context: context)
    }
}

extension ConnectionDriver {
    /// A channel error: logged at debug level, then the transport closes.
    func channelError(_ error: any Error, context: ChannelHandlerContext) {
        if settings.logger.logLevel <= .debug {
            logger.debug("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }

    /// A user event through the channel: a server shutdown starts the closing handshake with 1001.
    func channelEvent(_ event: Any, context: ChannelHandlerContext) {
        if event is ServerShutdownEvent {
            startClose(code: .goingAway, reason: "server shutting down")
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// The channel's `read()` while the driver may not read (``ConnectionDriver/mayRead``): held until
/// it may again (``FrameSink/readIfHeld()``).
struct HeldRead {
    private var held = false

    /// Passes the read on, or holds it.
    mutating func read(context: ChannelHandlerContext, driver: ConnectionDriver) {
        if driver.mayRead {
            context.read()
        } else {
            held = true
        }
    }

    /// Issues the read that was held, if one was.
    mutating func release(context: ChannelHandlerContext?) {
        guard held, let context else { return }
        held = false
        context.read()
    }
}
