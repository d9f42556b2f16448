import DuplexCore
import Logging
import NIOCore

/// Runs one WebSocket connection over any byte stream, in either role: feeds the DuplexCore
/// `Connection` what the transport read and the time, hands its events to the application,
/// writes what it produces (one flush per read batch, or per turn of the event loop for sends
/// made outside a read), and carries out what the core decides about time (through the event
/// loop's ``LoopTimerWheel``) and about closing the transport.
///
/// This is the one ``WebSocketTransport`` for framed WebSockets: the public API talks to it,
/// and it talks to a ``FrameSink`` (a TCP/TLS channel, an HTTP/2 stream). Its other concerns
/// are types of their own: ``ApplicationBridge`` (callbacks or the async queue),
/// ``OutboundFlow`` (hard limit and waiters), ``InboundFlow`` (when reads are held).
///
/// Everything runs on ``eventLoop``.
final class ConnectionDriver: WebSocketTransport {
    let eventLoop: any EventLoop
    let settings: ConnectionSettings
    let info: ConnectionInfo
    /// Where an async handler of this connection runs (the connection's loop, by default).
    let handlerExecutor: (any TaskExecutor)?

    private(set) var connection: Connection
    private var sink: (any FrameSink)?
    private let bridge: ApplicationBridge
    private var outbound: OutboundFlow
    private var inbound = InboundFlow()
    private var timerSlot: Int32 = -1
    private var timers: LoopTimerWheel?
    private var inReadBatch = false
    private var needsFlush = false
    private var flushScheduled = false
    private var transportCloseRequested = false
    /// Closes the transport if its last bytes are not written in time (see ``closeTransport(after:)``).
    private var closeWatchdog: Scheduled<Void>?
    private(set) var finished = false
    private var closeWatchers: [(CloseFrame) -> Void] = []
    private let flusher: LoopFlusher
    /// A published frame can be written as it is (see ``deliverPublished(_:encoded:)``): fixed
    /// for the connection's life, so asked of the core once.
    private let writesSharedFrames: Bool
    /// The key under which subscribers share an encoded frame; nil when they cannot.
    private let sharingKey: AnyHashable?
    /// Application pings waiting for their pong (``pingForRoundTrip(_:_:)``), oldest first.
    private var pingWaiters: [PingWaiter] = []
    /// The topics this connection subscribes to, with its group in each (made on first subscribe).
    private(set) var subscriptions: [String: TopicGroup]?

    init(connection: Connection, settings: ConnectionSettings, info: ConnectionInfo,
         application: WebSocketApplication, eventLoop: any EventLoop, handlerExecutor: (any TaskExecutor)? = nil) {
        self.connection = connection
        self.settings = settings
        self.info = info
        self.eventLoop = eventLoop
        self.handlerExecutor = handlerExecutor
        self.bridge = ApplicationBridge(application: application)
        self.outbound = OutboundFlow(configuration: settings.configuration)
        self.flusher = LoopFlusher.of(eventLoop)
        let whole = settings.configuration.fragmentSize == nil
        self.writesSharedFrames = whole && connection.sendsPlainFrames
        self.sharingKey = whole ? connection.sharedEncodingKey : nil
    }

    var configuration: WebSocketConfiguration { settings.configuration }
    var logger: Logger { settings.logger(connectionID: info.connectionID) }
    private var now: Connection.Instant { Connection.Instant(nanoseconds: eventLoop.now.uptimeNanoseconds) }

    /// The Sendable handle of this connection (made on first use).
    var socket: WebSocketConnection { bridge.socket(for: self) }

    // MARK: - Input from the transport

    /// The transport is ready: start the timers and the application.
    func start(sink: any FrameSink) {
        self.sink = sink
        let configuration = settings.configuration
        outbound.highWaterMarkApplied = sink.applyWaterMarks(
            low: configuration.outboundLowWaterMark, high: configuration.outboundHighWaterMark
        ) && sink.bufferedBytes <= configuration.outboundHighWaterMark
        settings.metrics.opened()
        settings.live?.opened()
        connection.start(at: now)
        armTimer()
        bridge.open(self)
    }

    /// Bytes the transport read.
    func receive(_ buffer: ByteBuffer) {
        guard !finished else { return }
        settings.metrics.received(bytes: buffer.readableBytes)
        inReadBatch = true
        connection.receive(buffer, at: now)
        while let event = connection.nextEvent() {
            handle(event)
        }
        writeOutbound()
        armTimer()
    }

    /// The end of a read batch: flush what it produced.
    func readComplete() {
        inReadBatch = false
        if needsFlush {
            needsFlush = false
            sink?.flush()
        }
    }

    func writabilityChanged(isWritable: Bool) {
        guard isWritable else { return }
        outbound.drained()
        if outbound.drainOwed {
            outbound.drainOwed = false
            bridge.drained(self)
        }
        if mayRead { sink?.readIfHeld() }
    }

    /// Whether the transport may read: not while the application's queue is full, and not while
    /// the outbound buffer is over its hard limit (data sends are refused there, but the
    /// automatic replies, pongs and the close echo, are not: a peer that sends pings and never
    /// reads would otherwise make this side buffer pongs without bound).
    var mayRead: Bool {
        guard let sink else { return true }
        return !inbound.queueFull && !outbound.overHardLimit(adding: 0, sink: sink)
    }

    /// The application's queue has room again.
    func resumeReading() {
        inbound.queueFull = false
        if mayRead { sink?.readIfHeld() }
    }

    /// The transport is gone: report the close to everyone, once, and let go of everything.
    func transportClosed() {
        guard !finished else { return }
        finished = true
        connection.transportClosed()
        if let timers {
            timers.release(slot: timerSlot)
            self.timers = nil
        }
        closeWatchdog?.cancel()
        closeWatchdog = nil
        unsubscribeAll()
        let pings = pingWaiters
        pingWaiters = []
        for waiter in pings {
            waiter.timeout?.cancel()
            waiter.continuation.resume(throwing: WebSocketError.closed(connection.closeResult))
        }
        let result = connection.closeResult
        bridge.finish(result, clean: connection.endedCleanly, driver: self)
        outbound.fail(WebSocketError.closed(result))
        settings.metrics.closed(code: result.code)
        settings.live?.closed()
        if settings.logger.logLevel <= .debug {
            logger.debug("connection closed", metadata: ["close": "\(result)"])
        }
        let watchers = closeWatchers
        closeWatchers = []
        for watcher in watchers { watcher(result) }
        sink = nil
    }

    // MARK: - Events

    private func handle(_ event: ConnectionEvent) {
        switch event {
        case .text(let bytes):
            deliver(WebSocketData(isText: true, bytes: bytes))
        case .binary(let bytes):
            deliver(WebSocketData(isText: false, bytes: bytes))
        case .ping(let payload):
            // Answered by the core.
            configuration.onControlFrame?(.ping(payload))
        case .pong(let payload):
            configuration.onControlFrame?(.pong(payload))
            // Matched by the core to the ping whose payload it carries (and every earlier one).
            while !pingWaiters.isEmpty, let answered = connection.nextAcknowledgedPing() {
                guard let index = pingWaiters.firstIndex(where: { $0.payload == answered.payload }) else { continue }
                let waiter = pingWaiters.remove(at: index)
                waiter.timeout?.cancel()
                waiter.continuation.resume(returning: answered.roundTrip)
            }
        case .close(let frame):
            if settings.logger.logLevel <= .debug { logger.debug("peer closed", metadata: ["close": "\(frame)"]) }
            bridge.endInbound(connection.closeResult, error: nil)
        case .failed(let error):
            if settings.logger.logLevel <= .debug {
                logger.debug("protocol error", metadata: ["error": "\(error)", "close_code": "\(error.closeCode.rawValue)"])
            }
            settings.metrics.protocolError()
            bridge.endInbound(connection.closeResult, error: WebSocketError.closed(CloseFrame(code: error.closeCode, reason: error.description)))
        }
    }

    private func deliver(_ data: WebSocketData) {
        settings.metrics.messageReceived()
        if !bridge.deliver(data, driver: self) {
            inbound.queueFull = true
        }
    }

    // MARK: - Time

    private func armTimer() {
        let deadline = connection.nextDeadline?.nanoseconds
        if timers == nil {
            guard deadline != nil, !finished else { return }
            let wheel = LoopTimerWheel.of(eventLoop)
            timers = wheel
            timerSlot = wheel.register(self)
        }
        timers?.arm(slot: timerSlot, at: deadline)
    }

    /// The wheel says this connection's deadline came.
    func timerFired(at now: Connection.Instant) {
        guard !finished else { return }
        let wasOpen = connection.state == .open
        connection.timerFired(at: now)
        if wasOpen, connection.state != .open, let sent = connection.closeSent {
            logger.info("closing", metadata: ["close": "\(sent)"])
        }
        if connection.shouldCloseTransport {
            // A timeout: the transport closes now, whether or not the peer takes what is buffered.
            if let bytes = connection.takeOutbound() { sink?.write(bytes) }
            sink?.flush()
            sink?.closeNow()
            return
        }
        writeOutbound()
        armTimer()
    }

    // MARK: - Output

    /// Writes what the core produced: flushed at the end of the read batch, or once at the end
    /// of this turn of the event loop for sends made outside a read (several sends, one flush).
    private func writeOutbound() {
        guard let sink else { return }
        if let bytes = connection.takeOutbound() {
            settings.metrics.sent(bytes: bytes.readableBytes)
            if connection.shouldCloseTransport {
                closeTransport(after: bytes)
                return
            }
            sink.write(bytes)
            if inReadBatch {
                needsFlush = true
            } else {
                scheduleFlush()
            }
        } else if connection.shouldCloseTransport {
            closeTransport(after: nil)
        }
    }

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        flusher.flushSoon(self)
    }

    /// The end of the loop turn in which this connection wrote outside a read batch.
    func flushNow() {
        flushScheduled = false
        sink?.flush()
    }

    private func closeTransport(after bytes: ByteBuffer?) {
        guard !transportCloseRequested, let sink else { return }
        transportCloseRequested = true
        sink.writeAndClose(bytes)
        // The sink closes once `bytes` are written, and the core arms no timer once it decided to
        // close (peer's close echoed, protocol error): a peer that stopped reading (full TCP
        // window) would keep the connection and its buffers forever. Bound the wait by the close
        // timeout. A task of its own, not the wheel: only closing connections have one.
        if !finished {
            closeWatchdog = eventLoop.assumeIsolated().scheduleTask(in: configuration.closeTimeout) { [weak self] in
                self?.sink?.closeNow()
            }
        }
    }

    // MARK: - Topics

    /// Subscribes this connection to `topic`. Returns false if it already was.
    /// - Throws: ``WebSocketError/closed(_:)`` once closing (a closed connection is in no topic),
    ///   ``WebSocketError/topicsUnavailable`` where there are no topics (client connections).
    func subscribe(to topic: String) throws(WebSocketError) -> Bool {
        guard let registry = settings.topics else { throw .topicsUnavailable }
        guard connection.state == .open, !finished else { throw .closed(connection.closeSent ?? connection.closeResult) }
        if subscriptions?[topic] != nil { return false }
        let group = registry.subscribe(self, to: topic)
        subscriptions = subscriptions ?? [:]
        subscriptions![topic] = group
        return true
    }

    /// Unsubscribes this connection from `topic`. Returns false if it was not subscribed.
    func unsubscribe(from topic: String) -> Bool {
        guard let registry = settings.topics, let group = subscriptions?.removeValue(forKey: topic) else { return false }
        registry.unsubscribe(self, from: group)
        return true
    }

    private func unsubscribeAll() {
        guard let registry = settings.topics, let subscribed = subscriptions else { return }
        subscriptions = nil
        for group in subscribed.values { registry.unsubscribe(self, from: group) }
    }

    /// The topics this connection subscribes to.
    var topics: Set<String> { subscriptions.map { Set($0.keys) } ?? [] }

    /// Publishes to every subscriber of `topic` but this connection. Returns how many it goes to.
    /// - Throws: ``WebSocketError/topicsUnavailable`` where there are no topics (client connections).
    func publish(_ frame: SharedFrame, to topic: String) throws(WebSocketError) -> Int {
        guard let registry = settings.topics else { throw .topicsUnavailable }
        let count = registry.publish(frame, to: topic, skipping: ObjectIdentifier(self))
        return subscriptions?[topic] != nil ? count - 1 : count
    }

    /// A message published to a topic this connection subscribes to, written as:
    /// - the shared frame's bytes, when nothing transforms this connection's messages;
    /// - the frame in `encoded` for this connection's ``Connection/sharedEncodingKey``
    ///   (permessage-deflate without context takeover), compressed by the first such subscriber
    ///   of this delivery and reused by the others;
    /// - otherwise its own encoding (permessage-deflate with context takeover compresses per
    ///   connection).
    /// Over the hard limit, the backpressure policy applies.
    func deliverPublished(_ shared: SharedFrame, encoded: inout [AnyHashable: ByteBuffer]) {
        guard connection.state == .open, let sink else { return }
        let size = writesSharedFrames ? shared.frame.readableBytes
            : connection.outboundSize(ofMessage: shared.payload.readableBytes, fragmentSize: configuration.fragmentSize)
        if refusesOverHardLimit(adding: size, payload: shared.payload.readableBytes, sink: sink) { return }
        settings.metrics.messageSent()
        let frame: ByteBuffer
        if writesSharedFrames {
            frame = shared.frame
        } else if let key = sharingKey {
            if let ready = encoded[key] {
                frame = ready
            } else {
                guard let made = try? connection.encodeForSharing(shared.opcode, payload: shared.payload) else { return }
                encoded[key] = made
                frame = made
            }
        } else {
            try? connection.send(shared.opcode, payload: shared.payload, fragmentSize: configuration.fragmentSize)
            writeOutbound()
            return
        }
        writeOutbound()  // whatever the core queued first (a pong) goes first
        settings.metrics.sent(bytes: frame.readableBytes)
        sink.write(frame)
        if inReadBatch { needsFlush = true } else { scheduleFlush() }
    }

    /// The backpressure policy for a message whose frames, `size` bytes with their headers (see
    /// ``Connection/outboundSize(ofMessage:fragmentSize:)``), would take the outbound buffer over
    /// its hard limit (a send or a published message alike): counted as dropped, and with the
    /// `.close` policy the closing handshake starts. Returns whether the message is refused.
    /// An empty buffer takes any message of at most the limit's `payload` bytes (a message as
    /// large as the limit can be sent, its headers over it).
    private func refusesOverHardLimit(adding size: Int, payload: Int, sink: any FrameSink) -> Bool {
        guard outbound.overHardLimit(adding: size, sink: sink) else { return false }
        if payload <= configuration.outboundHardLimit && sink.bufferedBytes == 0 { return false }
        settings.metrics.messageDropped()
        if case .close(let code) = configuration.backpressurePolicy {
            logger.info("closing: outbound buffer over its hard limit (the peer reads too slowly)",
                        metadata: ["limit": "\(configuration.outboundHardLimit)"])
            startClose(code: code, reason: "peer reads too slowly")
        }
        return true
    }

    // MARK: - WebSocketTransport

    func send(_ opcode: Opcode, _ payload: ByteBuffer) -> SendResult {
        guard connection.state == .open, let sink else { return .dropped }
        let size = connection.outboundSize(ofMessage: payload.readableBytes, fragmentSize: configuration.fragmentSize)
        if refusesOverHardLimit(adding: size, payload: payload.readableBytes, sink: sink) { return .dropped }
        do {
            try connection.send(opcode, payload: payload, fragmentSize: configuration.fragmentSize)
        } catch {
            return .dropped
        }
        settings.metrics.messageSent()
        writeOutbound()
        if sink.isWritable { return .sent }
        outbound.drainOwed = true
        settings.metrics.sendBuffered()
        return .buffered
    }

    var sendFailure: WebSocketError {
        connection.state == .open ? .dropped : .closed(connection.closeSent ?? connection.closeResult)
    }

    func waitUntilWritable(_ waiter: WritabilityWaiter) {
        if finished {
            waiter.fail(WebSocketError.closed(connection.closeResult))
        } else if sink?.isWritable ?? false {
            waiter.succeed()
        } else {
            outbound.addWaiter(waiter)
        }
    }

    func ping(_ payload: ByteBuffer) throws(WebSocketError) {
        do {
            try connection.ping(payload)
        } catch {
            throw error == .notOpen ? .closed(connection.closeSent ?? connection.closeResult) : .invalidSend(error)
        }
        writeOutbound()
    }

    /// Sends a ping and resumes `continuation` with the round-trip time when its pong comes, or
    /// with ``WebSocketError/pingTimeout`` after the pong timeout.
    func pingForRoundTrip(_ payload: ByteBuffer, _ continuation: UnsafeContinuation<Duration, any Error>) {
        do {
            try connection.ping(payload, at: now)
        } catch {
            continuation.resume(throwing: error == .notOpen ? WebSocketError.closed(connection.closeSent ?? connection.closeResult)
                                                          : WebSocketError.invalidSend(error))
            return
        }
        let timeout = eventLoop.assumeIsolated().scheduleTask(in: configuration.pongTimeout) { [self] in
            guard let index = pingWaiters.firstIndex(where: { $0.payload == payload }) else { return }
            pingWaiters.remove(at: index).continuation.resume(throwing: WebSocketError.pingTimeout)
        }
        pingWaiters.append(PingWaiter(payload: payload, continuation: continuation, timeout: timeout))
        writeOutbound()
    }

    func close(code: CloseCode, reason: String) throws(WebSocketError) {
        guard connection.state == .open else { return }
        do {
            try connection.close(code: code, reason: reason, at: now)
        } catch {
            throw .invalidSend(error)
        }
        writeOutbound()
        armTimer()
    }

    /// Starts the closing handshake with a reason of this side's own (policy, shutdown).
    func startClose(code: CloseCode, reason: String) {
        guard connection.state == .open else { return }
        try? connection.close(code: code, reason: String(reason.utf8.prefix(123)) ?? "", at: now)
        writeOutbound()
        armTimer()
    }

    var isWritable: Bool { sink?.isWritable ?? false }

    var bufferedBytes: Int { sink?.bufferedBytes ?? 0 }

    func whenClosed(_ body: @escaping (CloseFrame) -> Void) {
        if finished {
            body(connection.closeResult)
        } else {
            closeWatchers.append(body)
        }
    }
}

/// An application ping waiting for its pong.
struct PingWaiter {
    let payload: ByteBuffer
    let continuation: UnsafeContinuation<Duration, any Error>
    let timeout: Scheduled<Void>?
}

/// When a connection holds its reads (inbound backpressure): the application's queue of
/// received messages is full, in messages and in bytes (see ``InboundMessageQueue``). (The other reason, an outbound buffer over its hard limit, is
/// ``OutboundFlow``'s.)
struct InboundFlow {
    var queueFull = false
}
