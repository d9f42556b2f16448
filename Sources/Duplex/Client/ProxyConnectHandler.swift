import NIOCore

/// Opens an HTTP `CONNECT` tunnel through a proxy, then gets out of the way.
///
/// It sits first in the pipeline and holds back `channelActive` from the handlers after it
/// (TLS, the HTTP upgrade) until the proxy answered 2xx, so they start exactly as on a direct
/// connection. Writes made before then are buffered. Bytes the proxy sent after its answer are
/// passed on. A refusal fires ``WebSocketError/proxyFailed(_:)`` down the pipeline and closes.
final class ProxyConnectHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = Any
    typealias OutboundOut = Any

    /// Largest proxy answer header accepted.
    static let maxResponseBytes = 16 << 10

    private enum State {
        case idle
        case awaitingResponse
        case tunnel
        case failed
    }

    private let target: String
    private let proxy: HTTPProxy
    private var state = State.idle
    private var received = ByteBuffer()
    private var pendingWrites: [(NIOAny, EventLoopPromise<Void>?)] = []
    private var pendingFlush = false

    /// - Parameter target: `host:port` of the server to reach.
    init(target: String, proxy: HTTPProxy) {
        self.target = target
        self.proxy = proxy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { sendConnect(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        sendConnect(context: context)
    }

    private func sendConnect(context: ChannelHandlerContext) {
        guard case .idle = state else { return }
        state = .awaitingResponse
        var request = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n"
        if let authorization = proxy.authorization { request += "Proxy-Authorization: \(authorization)\r\n" }
        request += "\r\n"
        context.writeAndFlush(NIOAny(ByteBuffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .tunnel:
            context.fireChannelRead(data)
        case .awaitingResponse:
            var bytes = unwrapInboundIn(data)
            received.writeBuffer(&bytes)
            parseResponse(context: context)
        case .idle, .failed:
            break
        }
    }

    private func parseResponse(context: ChannelHandlerContext) {
        let view = received.readableBytesView
        guard let end = view.firstRange(of: [13, 10, 13, 10]) else {
            if received.readableBytes > Self.maxResponseBytes {
                fail(context: context, "the proxy's answer to CONNECT exceeds \(Self.maxResponseBytes) bytes")
            }
            return
        }
        let headerLength = end.upperBound - view.startIndex
        let header = received.readString(length: headerLength) ?? ""
        let statusLine = header.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            fail(context: context, "the proxy sent a malformed answer to CONNECT: '\(statusLine)'")
            return
        }
        guard (200..<300).contains(status) else {
            fail(context: context, "the proxy \(proxy) refused CONNECT \(target): \(statusLine.dropFirst(parts[0].count + 1))")
            return
        }
        state = .tunnel
        context.fireChannelActive()
        for (data, promise) in pendingWrites { context.write(data, promise: promise) }
        pendingWrites = []
        if pendingFlush { context.flush() }
        let rest = received
        received = ByteBuffer()
        if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func fail(context: ChannelHandlerContext, _ reason: String) {
        guard case .awaitingResponse = state else { return }
        state = .failed
        let error = WebSocketError.proxyFailed(reason)
        for (_, promise) in pendingWrites { promise?.fail(error) }
        pendingWrites = []
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .tunnel = state {
            context.write(data, promise: promise)
        } else {
            pendingWrites.append((data, promise))
        }
    }

    func flush(context: ChannelHandlerContext) {
        if case .tunnel = state { context.flush() } else { pendingFlush = true }
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .idle, .awaitingResponse:
            state = .failed
            let error = WebSocketError.proxyFailed("the proxy \(proxy) closed the connection before answering CONNECT")
            for (_, promise) in pendingWrites { promise?.fail(error) }
            pendingWrites = []
            context.fireErrorCaught(error)
        case .tunnel, .failed:
            break
        }
        context.fireChannelInactive()
    }
}
