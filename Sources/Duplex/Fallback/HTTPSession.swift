import DuplexCore
import HTTPTypes
import NIOCore
import NIOHTTP1

/// One HTTP fallback session on NIO: the ``FallbackSession`` state machine, the connection's
/// ``ConnectionDriver`` and the HTTP exchanges that carry it (an SSE stream or a pending poll
/// down, POSTs up).
///
/// The session is the driver's ``FrameSink``, so that every rule of a WebSocket connection
/// (backpressure policy, inbound queue, topics, keepalive, closing, metrics, shutdown) is the
/// driver's, for both transports alike. At the far end of that byte stream stands `peer`, a
/// client-role DuplexCore `Connection` that plays the HTTP client's part: it turns the frames the
/// driver writes back into messages for the outbox, answers the driver's pings, echoes its close,
/// and frames the messages a POST brings. Everything runs on ``eventLoop``.
final class HTTPSession: FrameSink {
    let eventLoop: any EventLoop
    /// The endpoint path the session was opened at (requests for it elsewhere answer 404).
    let path: String
    private(set) var state: FallbackSession
    private var driver: ConnectionDriver?
    private var peer = Connection(role: .client, configuration: HTTPSession.peerConfiguration)
    private var stream: (port: EventStreamPort, number: Int)?
    private var poll: EventLoopPromise<RouteResponse>?
    /// Events a poll answer starts with (a `lost` event).
    private var pollPrefix: ByteBuffer?
    private var heldPost: EventLoopPromise<RouteResponse>?
    /// The close the client sent (in a POST), if it closed first.
    private var clientClose: CloseFrame?
    private var timer: Scheduled<Void>?
    private var timerDeadline: Connection.Instant?
    private var transportEnded = false
    private var removed = false
    private let table: HTTPSessionTable

    /// The stand-in client takes whatever the server sends (the server's own limits bound it).
    private static let peerConfiguration = Connection.Configuration(
        limits: Limits(maxFrameSize: 1 << 48, maxMessageSize: 1 << 48), autoPong: true)

    init(state: FallbackSession, path: String, eventLoop: any EventLoop, table: HTTPSessionTable) {
        self.state = state
        self.path = path
        self.eventLoop = eventLoop
        self.table = table
    }

    private var now: Connection.Instant { Connection.Instant(nanoseconds: eventLoop.now.uptimeNanoseconds) }

    /// Starts the connection (the application's `onOpen` or handler).
    func start(driver: ConnectionDriver) {
        self.driver = driver
        driver.start(sink: self)
        rearm()
    }

    // MARK: - FrameSink (the driver's bytes, to the outbox)

    func write(_ bytes: ByteBuffer) {
        peer.receive(bytes)
        while let event = peer.nextEvent() {
            switch event {
            case .text(let payload): state.enqueueMessage(isText: true, payload: payload)
            case .binary(let payload): state.enqueueMessage(isText: false, payload: payload)
            case .close(let frame):
                // The client's own close comes back as the echo: it learns the code and reason it sent.
                state.enqueueClose(clientClose ?? CloseFrame(code: frame.code ?? .noStatusReceived, reason: frame.reason))
            case .failed(let error): state.enqueueClose(CloseFrame(code: error.closeCode, reason: error.description))
            case .ping, .pong: break
            }
        }
        // Pongs and the close echo go back to the driver, but not from inside its own write.
        if let reply = peer.takeOutbound() {
            eventLoop.assumeIsolated().execute { [self] in feedDriver(reply) }
        }
    }

    func flush() { deliver() }

    func writeAndClose(_ bytes: ByteBuffer?) {
        if let bytes { write(bytes) }
        endTransport()
    }

    func closeNow() { endTransport() }

    var isWritable: Bool { state.isWritable }

    var bufferedBytes: Int { state.undeliveredBytes }

    func applyWaterMarks(low: Int, high: Int) -> Bool {
        state.setWaterMarks(low: low, high: high)
        return true
    }

    func readIfHeld() {
        guard let post = heldPost, driver?.mayRead ?? true else { return }
        heldPost = nil
        state.endPost(at: now)
        post.succeed(RouteResponse(status: .noContent))
        rearm()
    }

    private func feedDriver(_ bytes: ByteBuffer) {
        guard let driver, !driver.finished else { return }
        driver.receive(bytes)
        driver.readComplete()
    }

    /// The driver is done with its transport: the connection ends (after this turn: the driver
    /// may be inside a call), and the close event (if the close handshake did not queue one)
    /// goes to the client.
    private func endTransport() {
        guard !transportEnded else { return }
        transportEnded = true
        eventLoop.assumeIsolated().execute { [self] in
            guard let driver else { return }
            self.driver = nil
            driver.transportClosed()
            state.enqueueClose(driver.connection.closeResult)
            deliver()
            readIfHeld()
        }
    }

    // MARK: - Down

    /// Sends what waits: down the stream while its channel takes it, or as the pending poll's answer.
    private func deliver() {
        let wasWritable = state.isWritable
        if let stream {
            if stream.port.isWritable, state.hasUndelivered {
                stream.port.write(state.takeUndelivered(at: now))
            }
            if state.closeDelivered { endStream() }
        } else if poll != nil, state.hasUndelivered || pollPrefix != nil {
            answerPoll()
        }
        if !wasWritable, state.isWritable, let driver {
            eventLoop.assumeIsolated().execute { driver.writabilityChanged(isWritable: true) }
        }
        rearm()
    }

    private func answerPoll() {
        guard let poll else { return }
        self.poll = nil
        var body = pollPrefix ?? ByteBuffer()
        pollPrefix = nil
        for var event in state.takeUndelivered(maxBytes: state.configuration.maxPollAnswerBytes, at: now) { body.writeBuffer(&event) }
        state.detach(stream: 0, at: now)
        poll.succeed(RouteResponse(headerFields: Self.eventFields(.textPlain), body: body))
    }

    private func endStream() {
        guard let stream else { return }
        self.stream = nil
        stream.port.end()
        state.detach(stream: stream.number, at: now)
    }

    static func eventFields(_ type: EventBodyType) -> HTTPFields {
        [.contentType: type.rawValue, .cacheControl: "no-store"]
    }

    enum EventBodyType: String {
        case eventStream = "text/event-stream; charset=utf-8"
        case textPlain = "text/plain; charset=utf-8"
    }

    /// An SSE stream of this session begins (a new one replaces the one before).
    func attach(stream port: EventStreamPort, lastEventID: UInt64?, announce: Bool) {
        if announce { port.write([EventStreamFormat.session(id: state.id)]) }
        switch state.attach(lastEventID: lastEventID, at: now) {
        case .failure(.unknownEventID(let id)):
            port.write([EventStreamFormat.close(sequence: 0, CloseFrame(code: .policyViolation, reason: "unknown Last-Event-ID \(id)"))])
            port.end()
        case .failure:
            port.end()
        case .success(let (number, lost)):
            if let old = stream { old.port.end() }
            stream = (port, number)
            if let lost { port.write([EventStreamFormat.lost(first: lost.first, last: lost.last)]) }
            deliver()
        }
    }

    /// The stream on `channel` ended (the client went away).
    func streamEnded(channel: ObjectIdentifier) {
        guard let stream, ObjectIdentifier(stream.port.channel) == channel else { return }
        self.stream = nil
        state.detach(stream: stream.number, at: now)
        rearm()
    }

    /// The SSE stream's channel can take bytes again.
    func streamWritable() { deliver() }

    /// A long-poll GET: answered now if events wait, else when one comes or at the poll timeout.
    func poll(lastEventID: UInt64?) -> EventLoopFuture<RouteResponse> {
        switch state.attach(lastEventID: lastEventID, at: now) {
        case .failure(.pollPending):
            return eventLoop.makeSucceededFuture(.text("a poll is already pending on this session\n", status: .badRequest))
        case .failure(.unknownEventID(let id)):
            return eventLoop.makeSucceededFuture(.text("event id \(id) was never sent on this session\n", status: .badRequest))
        case .failure(.finished):
            return eventLoop.makeSucceededFuture(.text("session closed\n", status: .notFound))
        case .success(let (_, lost)):
            let promise = eventLoop.makePromise(of: RouteResponse.self)
            poll = promise
            pollPrefix = lost.map { EventStreamFormat.lost(first: $0.first, last: $0.last) }
            deliver()
            return promise.futureResult
        }
    }

    // MARK: - Up

    /// A POST's events, for the connection: 204 once the application's queue has room for more.
    func post(_ events: [EventStreamFormat.UpstreamEvent]) -> EventLoopFuture<RouteResponse> {
        guard let driver, !driver.finished, peer.state == .open else {
            return eventLoop.makeSucceededFuture(.text("session closed\n", status: .notFound))
        }
        guard state.beginPost(at: now) else {
            return eventLoop.makeSucceededFuture(.text("a POST is already in flight on this session\n", status: .badRequest))
        }
        for event in events {
            switch event {
            case .message(let isText, let payload): try? peer.send(isText ? .text : .binary, payload: payload)
            case .close(let code, let reason):
                if clientClose == nil, peer.state == .open { clientClose = CloseFrame(code: code ?? .noStatusReceived, reason: reason) }
                try? peer.close(code: code, reason: reason)
            }
        }
        if let bytes = peer.takeOutbound() { feedDriver(bytes) }
        if driver.finished || driver.mayRead {
            state.endPost(at: now)
            rearm()
            return eventLoop.makeSucceededFuture(RouteResponse(status: .noContent))
        }
        let promise = eventLoop.makePromise(of: RouteResponse.self)
        heldPost = promise
        return promise.futureResult
    }

    // MARK: - Time and the end

    private func rearm() {
        guard !removed else { return }
        let deadline = state.nextDeadline
        guard deadline != timerDeadline else { return }
        timer?.cancel()
        timerDeadline = deadline
        guard let deadline else { return }
        timer = eventLoop.assumeIsolated().scheduleTask(deadline: NIODeadline.uptimeNanoseconds(deadline.nanoseconds)) { [self] in
            timerDeadline = nil
            timerFired()
        }
    }

    private func timerFired() {
        let due = state.timerFired(at: now)
        if due.expired {
            end()
            return
        }
        if due.heartbeat, let stream {
            stream.port.write([EventStreamFormat.heartbeat])
            state.wrote(at: now)
        }
        if due.pollTimedOut { answerPoll() }
        rearm()
    }

    /// The server shuts down: the connection closes with 1001, which the client is told.
    func goAway() {
        driver?.startClose(code: .goingAway, reason: "server shutting down")
    }

    /// The session is over (expired, or the server stops): its connection ends (1006 if it was
    /// still open), its exchanges are answered and its id is forgotten.
    func end() {
        guard !removed else { return }
        removed = true
        timer?.cancel()
        timer = nil
        table.remove(state.id)
        if let driver {
            self.driver = nil
            driver.transportClosed()
        }
        endStream()
        if let poll {
            self.poll = nil
            poll.succeed(.text("session closed\n", status: .notFound))
        }
        if let post = heldPost {
            heldPost = nil
            post.succeed(.text("session closed\n", status: .notFound))
        }
    }
}
