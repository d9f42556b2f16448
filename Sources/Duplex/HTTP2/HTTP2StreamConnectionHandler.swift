import NIOCore
import NIOHTTP2

/// The ``FrameSink`` of a WebSocket carried by one HTTP/2 stream (RFC 8441), in either role: in the
/// stream channel once the extended CONNECT and its 200 are done (the HTTP codec has left), the
/// stream's DATA frames are the WebSocket's bytes.
///
/// - Closing ends the stream: a close handshake's last bytes go out with END_STREAM
///   (``writeAndClose(_:)``); ``closeNow()`` resets it (RST_STREAM, CANCEL). Never the connection.
/// - A peer's END_STREAM ends this side too (as a TCP FIN does); a peer's RST_STREAM closes the
///   stream channel, which the driver sees as the transport's end (1006 for this WebSocket only).
/// - Backpressure: a stream channel has no water-mark option, so the sink counts the bytes written
///   and not yet taken by the connection (its write promises complete once the flow-control window
///   let them onto the socket) and applies the WebSocket's water marks to that count.
final class HTTP2StreamConnectionHandler: DriverChannelHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    let driver: ConnectionDriver
    var context: ChannelHandlerContext?
    var heldRead = HeldRead()
    private var ended = false
    private var pending = 0
    private var lowWaterMark = 0
    private var highWaterMark = Int.max
    private var writable = true

    init(driver: ConnectionDriver) {
        self.driver = driver
    }

    /// Puts a sink for `driver` in place of the handshake's handler (`context`) and the stream's HTTP
    /// `codec`, and hands it the WebSocket bytes that came before (`early`).
    static func replace(context: ChannelHandlerContext, codec: any RemovableChannelHandler, driver: ConnectionDriver,
                        early: [ByteBuffer]) throws {
        let pipeline = context.pipeline.syncOperations
        let handler = HTTP2StreamConnectionHandler(driver: driver)
        pipeline.removeHandler(codec, promise: nil)
        try pipeline.addHandler(handler, position: .after(context.handler))
        for chunk in early { context.fireChannelRead(NIOAny(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(chunk))))) }
        if !early.isEmpty { context.fireChannelReadComplete() }
        pipeline.removeHandler(context: context, promise: nil)
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        startDriver(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .data(let data):
            if case .byteBuffer(let bytes) = data.data, bytes.readableBytes > 0 { driver.receive(bytes) }
            // The peer ended its side of the stream: end this side too once what is written went out.
            if data.endStream { endStream(context: context) }
        case .headers(let headers) where headers.endStream:
            endStream(context: context)  // trailers end the stream
        case .headers:
            // A header block in the middle of a WebSocket's bytes: not a stream this side can read.
            closeNow()
        default:
            break
        }
    }

    // MARK: - FrameSink

    func write(_ bytes: ByteBuffer) {
        guard let context, !ended else { return }
        let size = bytes.readableBytes
        pending += size
        if writable, pending > highWaterMark { writable = false }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] _ in taken(size) }
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: written)
    }

    /// Bytes the connection took (or dropped with a closed stream): writable again under the low mark.
    private func taken(_ size: Int) {
        pending -= size
        if !writable, pending < lowWaterMark {
            writable = true
            driver.writabilityChanged(isWritable: true)
        }
    }

    func flush() {
        context?.flush()
    }

    func writeAndClose(_ bytes: ByteBuffer?) {
        guard let context else { return }
        if let bytes, bytes.readableBytes > 0 { write(bytes) }
        endStream(context: context)
    }

    /// Sends END_STREAM (once). The stream channel closes when both sides ended; the driver's close
    /// watchdog resets a stream whose peer never ends its side.
    private func endStream(context: ChannelHandlerContext) {
        guard !ended else { return }
        ended = true
        context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: nil)
    }

    func closeNow() {
        // Closing a stream channel whose stream is still open resets the stream (RST_STREAM CANCEL).
        context?.close(promise: nil)
    }

    var isWritable: Bool { context != nil && writable }

    var bufferedBytes: Int { pending }

    func applyWaterMarks(low: Int, high: Int) -> Bool {
        lowWaterMark = low
        highWaterMark = high
        writable = pending <= high
        return true
    }
}
