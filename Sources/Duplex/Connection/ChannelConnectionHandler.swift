import NIOCore

/// The `ChannelHandler` of an open WebSocket on a NIO channel of bytes (TCP, TLS), in either
/// role: the ``FrameSink`` of a ``ConnectionDriver``. It forwards reads, read completions,
/// writability and the channel's end to the driver, writes and closes for it, and holds the
/// channel's reads while the driver says it may not read.
final class ChannelConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler, FrameSink {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let driver: ConnectionDriver
    private var context: ChannelHandlerContext?
    private var readHeld = false
    /// The channel's writability, as its last writability event said (NIO fires the event as
    /// soon as a write passes the high-water mark): read on every send and every delivery,
    /// where asking the channel costs an atomic load through the pipeline.
    private var writable = true

    init(driver: ConnectionDriver) {
        self.driver = driver
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        writable = context.channel.isWritable
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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        driver.receive(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        driver.readComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        driver.writabilityChanged(isWritable: writable)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if driver.settings.logger.logLevel <= .debug {
            driver.logger.debug("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ServerShutdownEvent {
            driver.startClose(code: .goingAway, reason: "server shutting down")
        }
        context.fireUserInboundEventTriggered(event)
    }

    func read(context: ChannelHandlerContext) {
        if driver.mayRead {
            context.read()
        } else {
            readHeld = true
        }
    }

    // MARK: - FrameSink

    func readIfHeld() {
        guard readHeld, let context else { return }
        readHeld = false
        context.read()
    }

    func write(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    func writeAndClose(_ bytes: ByteBuffer?) {
        guard let context else { return }
        context.writeAndFlush(wrapOutboundOut(bytes ?? ByteBuffer())).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func closeNow() {
        context?.close(promise: nil)
    }

    var isWritable: Bool { context != nil && writable }

    var bufferedBytes: Int {
        guard let context else { return 0 }
        return (try? context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    func applyWaterMarks(low: Int, high: Int) -> Bool {
        guard let context else { return false }
        let set: Void? = try? context.channel.syncOptions?.setOption(
            ChannelOptions.writeBufferWaterMark, value: WriteBufferWaterMark(low: low, high: high)
        )
        return set != nil
    }
}

/// Sent through every connection's pipeline when its server starts a graceful shutdown.
struct ServerShutdownEvent: Sendable {}
