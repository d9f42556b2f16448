import NIOCore
import NIOExtras
import NIOHTTP1

/// The HTTP `CONNECT` tunnel through a proxy, done by swift-nio-extras'
/// `NIOHTTP1ProxyConnectHandler` between an HTTP/1.1 request encoder and response decoder.
///
/// Once the proxy answered 2xx, the three handlers leave and the handlers of a direct
/// connection (TLS, the WebSocket upgrade) are added, so they start exactly as on a direct
/// connection. A refusal, a hang-up or a malformed answer is ``WebSocketError/proxyFailed(_:)``
/// with the proxy's status; no answer by the handshake's deadline is
/// ``WebSocketError/handshakeTimeout``. The channel is closed on failure.
///
/// Bytes a proxy sends after its 2xx and before this client spoke are not passed on: in both
/// ws:// and wss:// the server speaks only after the client.
enum ProxyTunnel {
    /// Adds the CONNECT exchange to `channel` (in its initializer); `then` adds the handlers of a
    /// direct connection once the tunnel is open; `failed` gets the reason when it cannot open.
    static func open(on channel: any Channel, to url: WebSocketURL, through proxy: HTTPProxy, deadline: NIODeadline,
                     then: @escaping (ChannelPipeline.SynchronousOperations) throws -> Void,
                     failed: @escaping (any Error) -> Void) throws {
        let sync = channel.pipeline.syncOperations
        let encoder = HTTPRequestEncoder()
        let decoder = ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes))
        // CONNECT's target is host:port, always with the port (RFC 9110 §9.3.6); Host is the same.
        var headers = HTTPHeaders([("Host", url.authority)])
        if let authorization = proxy.authorization { headers.add(name: "Proxy-Authorization", value: authorization) }
        let opened = channel.eventLoop.makePromise(of: Void.self)
        let answer = ProxyAnswerRecorder()
        try sync.addHandler(encoder)
        try sync.addHandler(decoder)
        try sync.addHandler(answer)
        try sync.addHandler(NIOHTTP1ProxyConnectHandler(targetHost: url.hostForURL, targetPort: url.port, headers: headers,
                                                         deadline: deadline, promise: opened))
        opened.futureResult.assumeIsolated().whenComplete { result in
            switch result {
            case .success:
                // The proxy handler removed itself; the HTTP codec goes too, then the direct connection's
                // handlers. The decoder leaves once its current read is done (this runs inside it): the
                // next handlers come after, or their first write (a TLS ClientHello) would meet it.
                sync.removeHandler(answer, promise: nil)
                sync.removeHandler(encoder, promise: nil)
                let removed = channel.eventLoop.makePromise(of: Void.self)
                sync.removeHandler(decoder, promise: removed)
                removed.futureResult.assumeIsolated().whenComplete { result in
                    do {
                        try result.get()
                        try then(sync)
                    } catch {
                        failed(error)
                        channel.close(promise: nil)
                    }
                }
            case .failure(let error):
                failed(reason(error, answer: answer, url: url, proxy: proxy))
                channel.close(promise: nil)
            }
        }
    }

    /// The client's error for a tunnel that did not open; `answer` saw what the proxy said.
    static func reason(_ error: any Error, answer: ProxyAnswerRecorder, url: WebSocketURL, proxy: HTTPProxy) -> any Error {
        typealias ConnectError = NIOHTTP1ProxyConnectHandler.Error
        let connect = "CONNECT \(url.authority)"
        if let malformed = answer.malformed {
            return WebSocketError.proxyFailed("the proxy \(proxy) sent a malformed answer to \(connect) (\(malformed))")
        }
        guard let error = error as? ConnectError else { return error }
        if error == ConnectError.httpProxyHandshakeTimeout() { return WebSocketError.handshakeTimeout }
        if let status = answer.status, !(200..<300).contains(status.code) {
            return WebSocketError.proxyFailed("the proxy \(proxy) refused \(connect): \(status.code) \(status.reasonPhrase)")
        }
        if error == ConnectError.remoteConnectionClosed() || error == ConnectError.channelUnexpectedlyInactive() {
            return WebSocketError.proxyFailed("the proxy \(proxy) closed the connection before answering \(connect)")
        }
        return WebSocketError.proxyFailed("the proxy \(proxy) sent a malformed answer to \(connect) (\(error))")
    }
}

/// Keeps the status of the proxy's answer to CONNECT (for the error message of a refusal), and
/// ends the exchange at once when the answer is not HTTP (the decoder's error would otherwise
/// leave it waiting for the deadline).
final class ProxyAnswerRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart
    private(set) var status: HTTPResponseStatus?
    private(set) var malformed: (any Error)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { status = head.status }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if malformed == nil, error is HTTPParserError {
            malformed = error
            context.close(promise: nil)
        }
        context.fireErrorCaught(error)
    }
}
