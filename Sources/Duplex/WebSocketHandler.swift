import DuplexCore
import Logging
import NIOCore

/// How the application consumes a connection.
enum WebSocketApplication: Sendable {
    /// A task per connection runs this with the async ``WebSocket`` (server endpoints).
    case task(@Sendable (WebSocket) async throws -> Void)
    /// Callbacks on the event loop (hottest paths).
    case callbacks(WebSocketCallbacks)
    /// The ``WebSocket`` is handed to a caller who iterates it (the client's `connect`).
    case handOff(EventLoopPromise<WebSocket>)
}

/// What a handler is told about its connection when it is created.
struct WebSocketSetup: Sendable {
    var role: Role
    var configuration: WebSocketConfiguration
    var subprotocol: String?
    var request: WebSocketRequest?
    var userData: (any Sendable)?
    var logger: Logger
    var metrics: WebSocketMetrics
}

/// The one `ChannelHandler` of an open WebSocket connection, in either role: it owns a
/// DuplexCore ``Connection``, feeds it the bytes the channel reads, delivers the events to the
/// application, writes what the core produces (flushing once per read batch), and drives the
/// timers (keepalive pings, idle, close timeout) and the backpressure in both directions.
final class WebSocketHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    typealias Producer = NIOThrowingAsyncSequenceProducer<
        WebSocketMessage, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, InboundDelegate
    >

    private(set) var connection: Connection
    let setup: WebSocketSetup
    var configuration: WebSocketConfiguration { setup.configuration }
    let application: WebSocketApplication
    var logger: Logger

    private var context: ChannelHandlerContext?
    private(set) var socket: WebSocket?
    private var source: Producer.Source?
    private var closedPromise: EventLoopPromise<CloseFrame>?

    private var readPaused = false
    private var readPending = false
    private var inReadBatch = false
    private var needsFlush = false
    private var transportCloseScheduled = false
    private var finished = false
    private var sendWaiters: [EventLoopPromise<Void>] = []

    private var pingTask: Scheduled<Void>?
    private var pongTimeoutTask: Scheduled<Void>?
    private var idleTask: Scheduled<Void>?
    private var closeTimeoutTask: Scheduled<Void>?
    private var lastReceive = NIODeadline.now()
    private var pingCounter: UInt64 = 0
    /// Whether the channel applies the configured high-water mark (see ``overHardLimit(adding:)``).
    private var highWaterMarkApplied = false

    init(connection: Connection, setup: WebSocketSetup, application: WebSocketApplication) {
        self.connection = connection
        self.setup = setup
        self.application = application
        self.logger = setup.logger
    }

    // MARK: - Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let queue = configuration.inboundQueueSize
        let sequence = Producer.makeSequence(
            backPressureStrategy: .init(lowWatermark: max(queue / 2, 1), highWatermark: queue),
            finishOnDeinit: false,
            delegate: InboundDelegate(handler: bound)
        )
        source = sequence.source
        let closed = loop.makePromise(of: CloseFrame.self)
        closedPromise = closed
        let socket = WebSocket(
            handler: bound, eventLoop: loop, messages: WebSocketMessages(base: sequence.sequence),
            closed: closed.futureResult, setup: setup
        )
        self.socket = socket
        let waterMarkSet: Void? = try? context.channel.syncOptions?.setOption(
            ChannelOptions.writeBufferWaterMark,
            value: WriteBufferWaterMark(low: configuration.outboundLowWaterMark, high: configuration.outboundHighWaterMark)
        )
        highWaterMarkApplied = waterMarkSet != nil && bufferedOutboundBytes <= configuration.outboundHighWaterMark
        setup.metrics.opened()
        schedulePing()
        if let idle = configuration.idleTimeout { scheduleIdleCheck(after: idle) }

        switch application {
        case .task(let body):
            let log = logger
            Task {
                do {
                    try await body(socket)
                    _ = try? await socket.close(code: .normalClosure)
                } catch {
                    log.debug("WebSocket handler threw", metadata: ["error": "\(error)"])
                    _ = try? await socket.close(code: .internalError)
                }
            }
        case .callbacks(let callbacks):
            callbacks.onOpen(EventLoopWebSocket(handler: self, socket: socket))
        case .handOff(let promise):
            promise.succeed(socket)
        }
        if !context.channel.isActive {
            // Added to a channel that already closed (a client whose server sent its last bytes and
            // hung up during the upgrade): the bytes read so far are handed in first, in this tick.
            context.eventLoop.assumeIsolated().execute { [self] in finish() }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    /// The transport is gone: report the close to everyone once.
    private func finish() {
        guard !finished else { return }
        finished = true
        connection.transportClosed()
        for task in [pingTask, pongTimeoutTask, idleTask, closeTimeoutTask] { task?.cancel() }
        let result = connection.closeResult
        // Recorded before the message sequence ends, so a handler whose loop just ended sees it.
        socket?.recordClose(result)
        let clean = connection.isCleanlyClosed || (connection.closeReceived != nil && connection.failure == nil)
        if clean {
            source?.finish()
        } else {
            source?.finish(WebSocketError.closed(result))
        }
        source = nil
        let waiters = sendWaiters
        sendWaiters = []
        for waiter in waiters { waiter.fail(WebSocketError.closed(result)) }
        setup.metrics.closed(code: result.code)
        logger.debug("connection closed", metadata: ["close": "\(result)"])
        if case .callbacks(let callbacks) = application, let socket {
            callbacks.onClose(EventLoopWebSocket(handler: self, socket: socket), result)
        }
        closedPromise?.succeed(result)
        closedPromise = nil
        // The WebSocket holds this handler (its sends fail with `.closed` from now on); this
        // handler no longer needs the WebSocket. Dropping it breaks the cycle that kept every
        // closed connection's handler, WebSocket and message sequence alive.
        socket = nil
    }

    // MARK: - Receiving

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if configuration.idleTimeout != nil { lastReceive = .now() }
        setup.metrics.received(bytes: buffer.readableBytes)
        inReadBatch = true
        connection.receive(buffer)
        while let event = connection.nextEvent() {
            handle(event)
        }
        writeOutbound()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBatch = false
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    private func handle(_ event: ConnectionEvent) {
        switch event {
        case .text(let bytes):
            deliver(WebSocketData(isText: true, bytes: bytes))
        case .binary(let bytes):
            deliver(WebSocketData(isText: false, bytes: bytes))
        case .ping:
            break
        case .pong:
            if pongTimeoutTask != nil {
                pongTimeoutTask?.cancel()
                pongTimeoutTask = nil
                schedulePing()
            }
        case .close(let frame):
            logger.debug("peer closed", metadata: ["close": "\(frame)"])
            endInbound(error: nil)
            if connection.state == .closed && connection.role == .client { scheduleCloseTimeout() }
        case .failed(let error):
            logger.debug("protocol error", metadata: ["error": "\(error)", "close_code": "\(error.closeCode.rawValue)"])
            setup.metrics.protocolError()
            endInbound(error: WebSocketError.closed(CloseFrame(code: error.closeCode, reason: error.description)))
        }
    }

    private func deliver(_ data: WebSocketData) {
        setup.metrics.messageReceived()
        switch application {
        case .callbacks(let callbacks):
            if let socket { callbacks.onMessage(EventLoopWebSocket(handler: self, socket: socket), data) }
        case .task, .handOff:
            if let source, source.yield(data.message) == .stopProducing {
                readPaused = true
            }
        }
    }

    private func endInbound(error: (any Error)?) {
        // The peer's close frame or the failure decides the close code now; record it before the
        // message sequence ends, so `closeFrame` is set when a handler's `for await` loop exits.
        socket?.recordClose(connection.closeResult)
        if let error { source?.finish(error) } else { source?.finish() }
        source = nil
    }

    // Inbound backpressure: hold the socket's reads while the application's queue is full, and
    // while the outbound buffer is over its hard limit: data sends are refused there, but the
    // automatic replies (pongs, the close echo) are not, so a peer that sends pings and never
    // reads would otherwise make the server buffer pongs without bound. Reading resumes once
    // the channel is writable again.
    private var mayRead: Bool {
        !readPaused && !overHardLimit(adding: 0)
    }

    func read(context: ChannelHandlerContext) {
        if mayRead {
            context.read()
        } else {
            readPending = true
        }
    }

    private func readIfPending() {
        if readPending, mayRead, let context {
            readPending = false
            context.read()
        }
    }

    func resumeReading() {
        readPaused = false
        readIfPending()
    }

    // MARK: - Sending

    /// Sends a data message (on the event loop). Past the hard limit, applies the backpressure policy.
    func send(_ opcode: Opcode, _ payload: ByteBuffer) -> SendResult {
        guard connection.state == .open, context != nil else { return .dropped }
        if overHardLimit(adding: payload.readableBytes) {
            setup.metrics.messageDropped()
            if case .close(let code) = configuration.backpressurePolicy {
                logger.info("closing: outbound buffer over its hard limit", metadata: ["limit": "\(configuration.outboundHardLimit)"])
                startClose(code: code, reason: "peer reads too slowly")
            }
            return .dropped
        }
        do {
            try connection.send(opcode, payload: payload, fragmentSize: configuration.fragmentSize)
        } catch {
            return .dropped
        }
        setup.metrics.messageSent()
        writeOutbound()
        return context?.channel.isWritable == false ? .buffered : .sent
    }

    /// Sends a data message and completes when the outbound buffer is under the high-water mark.
    func sendAsync(_ opcode: Opcode, _ payload: ByteBuffer, loop: any EventLoop) -> EventLoopFuture<Void> {
        guard connection.state == .open else {
            return loop.makeFailedFuture(WebSocketError.closed(connection.closeSent ?? connection.closeResult))
        }
        switch send(opcode, payload) {
        case .sent:
            return loop.makeSucceededVoidFuture()
        case .buffered:
            let promise = loop.makePromise(of: Void.self)
            sendWaiters.append(promise)
            return promise.futureResult
        case .dropped:
            return loop.makeFailedFuture(connection.state == .open ? WebSocketError.dropped : WebSocketError.closed(connection.closeSent ?? connection.closeResult))
        }
    }

    func ping(_ payload: ByteBuffer) throws {
        do {
            try connection.ping(payload)
        } catch {
            throw error == .notOpen ? WebSocketError.closed(connection.closeSent ?? connection.closeResult) : WebSocketError.invalidSend(error)
        }
        writeOutbound()
    }

    /// Starts the closing handshake (does nothing if it already started) and arms the close timeout.
    func startClose(code: CloseCode?, reason: String) {
        guard connection.state == .open else { return }
        do {
            try connection.close(code: code, reason: reason)
        } catch {
            logger.debug("invalid close", metadata: ["error": "\(error)"])
            try? connection.close(code: code, reason: "")
        }
        writeOutbound()
        scheduleCloseTimeout()
    }

    func validateClose(code: CloseCode?, reason: String) throws {
        if let code, !code.isValidOnWire { throw WebSocketError.invalidSend(.invalidCloseCode(code)) }
        if reason.utf8.count > 123 { throw WebSocketError.invalidSend(.closeReasonTooLong(reason.utf8.count)) }
    }

    /// Bytes written to the channel and not yet taken by the kernel.
    var bufferedOutboundBytes: Int {
        guard let context else { return 0 }
        return (try? context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// Whether the bytes buffered for the socket plus `extra` exceed the hard limit.
    ///
    /// Reading the buffered byte count is a channel option look-up, too costly for every send
    /// and every read. A writable channel buffers at most its high-water mark (NIO turns it
    /// unwritable as soon as a write takes it over the mark, and writable again only under the
    /// low mark), so while it is writable and the mark plus `extra` is within the hard limit,
    /// the answer is no without asking. `highWaterMarkApplied` is true only when the mark was
    /// set on the channel while the channel held no more than it.
    private func overHardLimit(adding extra: Int) -> Bool {
        if highWaterMarkApplied, configuration.outboundHighWaterMark + extra <= configuration.outboundHardLimit,
           context?.channel.isWritable == true {
            return false
        }
        return bufferedOutboundBytes + extra > configuration.outboundHardLimit
    }

    /// Writes what the core produced; flushes now, or once at the end of the read batch.
    private func writeOutbound() {
        guard let context else { return }
        if let bytes = connection.takeOutbound() {
            setup.metrics.sent(bytes: bytes.readableBytes)
            if connection.shouldCloseTransport && !transportCloseScheduled {
                transportCloseScheduled = true
                context.writeAndFlush(wrapOutboundOut(bytes)).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
                return
            }
            context.write(wrapOutboundOut(bytes), promise: nil)
            if inReadBatch { needsFlush = true } else { context.flush() }
        } else if connection.shouldCloseTransport && !transportCloseScheduled {
            transportCloseScheduled = true
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            let waiters = sendWaiters
            sendWaiters = []
            for waiter in waiters { waiter.succeed() }
            if case .callbacks(let callbacks) = application, let socket {
                callbacks.onDrain(EventLoopWebSocket(handler: self, socket: socket))
            }
            readIfPending()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: - Timers

    private func schedulePing() {
        guard let interval = configuration.pingInterval, let context, !finished else { return }
        pingTask?.cancel()
        pingTask = context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            sendKeepalivePing()
        }
    }

    private func sendKeepalivePing() {
        guard connection.state == .open, let context else { return }
        pingCounter &+= 1
        var payload = ByteBuffer()
        payload.writeInteger(pingCounter)
        try? connection.ping(payload)
        writeOutbound()
        pongTimeoutTask = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.pongTimeout) { [self] in
            pongTimeoutTask = nil
            logger.info("no pong within the timeout")
            switch configuration.pongTimeoutAction {
            case .close(let code): startClose(code: code, reason: "keepalive ping timeout")
            case .drop: self.context?.close(promise: nil)
            }
        }
    }

    private func scheduleIdleCheck(after delay: TimeAmount) {
        guard let context, !finished else { return }
        idleTask = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard let timeout = configuration.idleTimeout else { return }
            let idle = NIODeadline.now() - lastReceive
            if idle >= timeout {
                logger.debug("idle timeout")
                startClose(code: .goingAway, reason: "idle timeout")
            } else {
                scheduleIdleCheck(after: timeout - idle)
            }
        }
    }

    private func scheduleCloseTimeout() {
        guard closeTimeoutTask == nil, let context, !finished else { return }
        closeTimeoutTask = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.closeTimeout) { [self] in
            logger.debug("close timeout: closing the transport")
            self.context?.close(promise: nil)
        }
    }
}

/// Resumes reading when the application drained its message queue.
struct InboundDelegate: NIOAsyncSequenceProducerDelegate {
    let handler: NIOLoopBound<WebSocketHandler>

    func produceMore() {
        handler.eventLoop.execute { handler.value.resumeReading() }
    }

    func didTerminate() {}
}
