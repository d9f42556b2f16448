import NIOCore
import NIOSSL
import NIOTLS

/// Checks the server certificate's identity for TLS through a proxy tunnel.
///
/// NIOSSL checks a certificate against the host name and also against the IP address the
/// socket is connected to. Through a proxy that address is the proxy's, so a certificate for
/// the proxy's IP address would pass for any host. For tunnelled connections the client
/// therefore lets NIOSSL check the chain only (`noHostnameVerification`) and checks the name
/// here, against the target, with swift-certificates' RFC 6125 rules (``ServerIdentity``).
///
/// It holds back `channelActive` from the handlers after it (the HTTP upgrade) until the TLS
/// handshake completed and the name matched, so no request leaves before; on a mismatch it
/// fires ``TLSIdentityError`` and closes. X509's check is async: it runs in a task while this
/// handler holds back what arrives (events and reads), and its outcome is handled on the loop.
final class TunnelIdentityCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any

    /// What arrived while the check ran, passed on in order once it passed.
    private enum Held {
        case read(NIOAny)
        case readComplete
        case event(Any)
    }

    private enum State {
        case awaitingHandshake
        case checking([Held])
        case finished
    }

    private let expected: String
    private var activeHeld = false
    private var state = State.awaitingHandshake

    /// - Parameter expected: the host name or IP literal the certificate must name.
    init(expected: String) {
        self.expected = expected
    }

    func channelActive(context: ChannelHandlerContext) {
        activeHeld = true
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A check still running finds the connection gone and does nothing.
        state = .finished
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .checking(var held) = state else { return context.fireChannelRead(data) }
        held.append(.read(data))
        state = .checking(held)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard case .checking(var held) = state else { return context.fireChannelReadComplete() }
        held.append(.readComplete)
        state = .checking(held)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch state {
        case .checking(var held):
            held.append(.event(event))
            state = .checking(held)
        case .finished:
            context.fireUserInboundEventTriggered(event)
        case .awaitingHandshake:
            guard let tls = event as? TLSUserEvent, case .handshakeCompleted = tls else {
                return context.fireUserInboundEventTriggered(event)
            }
            guard let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate() else {
                return refuse(context: context, names: [])
            }
            state = .checking([.event(event)])
            let expected = self.expected
            let outcome = context.eventLoop.makePromise(of: ServerIdentity.Outcome.self)
            outcome.completeWithTask { await ServerIdentity.check(certificate, names: expected) }
            outcome.futureResult.assumeIsolated().whenSuccess { outcome in
                self.finish(outcome, context: context)
            }
        }
    }

    private func finish(_ outcome: ServerIdentity.Outcome, context: ChannelHandlerContext) {
        guard case .checking(let held) = state else { return }
        guard outcome.matches else { return refuse(context: context, names: outcome.names) }
        state = .finished
        if activeHeld { context.fireChannelActive() }
        for item in held {
            switch item {
            case .read(let data): context.fireChannelRead(data)
            case .readComplete: context.fireChannelReadComplete()
            case .event(let event): context.fireUserInboundEventTriggered(event)
            }
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func refuse(context: ChannelHandlerContext, names: [String]) {
        state = .finished
        context.fireErrorCaught(TLSIdentityError(expected: expected, names: names))
        context.close(promise: nil)
    }
}
