import NIOCore

/// The `ChannelHandler` of an open WebSocket on a NIO channel of bytes (TCP, TLS), in either
/// role: the ``FrameSink`` of a ``ConnectionDriver``. It forwards reads, read completions,
/// writability and the channel's end to the driver, writes and closes for it, and holds the
/// channel's reads while the driver says it may not read.
final class ChannelConnectionHandler: DriverChannelHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let driver: ConnectionDriver
    var context: ChannelHandlerContext?
    var heldRead = HeldRead()
    /// The channel's writability, as its last writability event said (NIO fires the event as
    /// soon as a write passes the high-water mark): read on every send and every delivery,
    /// where asking the channel costs an atomic load through the pipeline.
    private var writable = true

    init(driver: ConnectionDriver) {
        self.driver = driver
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        startDriver(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        driver.receive(unwrapInboundIn(data))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        driver.writabilityChanged(isWritable: writable)
        context.fireChannelWritabilityChanged()
    }

    // MARK: - FrameSink

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
            ChannelOptions.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: low, high: high)
        )
        return set != nil
    }
}

/// Sent through every connection's pipeline when its server starts a graceful shutdown.
struct ServerShutdownEvent: Sendable {}
