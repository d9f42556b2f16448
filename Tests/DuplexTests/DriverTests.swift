@testable import Duplex
import DuplexCore
import NIOCore
import NIOEmbedded
import Testing

// The connection driver on an EmbeddedChannel, with virtual time: `ConnectionDriver` and
// `ChannelConnectionHandler` exactly as a server runs them, fed masked client frames with
// `writeInbound`, their output read back with `readOutbound` and parsed as a client would, and
// every timer moved with `EmbeddedEventLoop.advanceTime`. Nothing sleeps: each timer rule is
// checked at the nanosecond it is due and the nanosecond before.
//
// The tests are synchronous: an EmbeddedEventLoop belongs to the thread that made it. An async
// server handler runs there too, on an `EventLoopTaskExecutor` of the embedded loop, one step
// at a time when the test runs the loop.

/// Counts the outbound events that reach the head of the pipeline (it sits before the driver's
/// handler): the flushes the driver makes and the reads it lets through. With `holdsWrites` it
/// is a socket whose peer stopped reading: writes are kept, their promises left pending.
private final class OutboundEventCounter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    var flushes = 0
    var reads = 0
    var holdsWrites = false
    private(set) var held: [(NIOAny, EventLoopPromise<Void>?)] = []

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if holdsWrites {
            held.append((data, promise))
        } else {
            context.write(data, promise: promise)
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // As a socket does: the writes it could not make fail when it closes.
        let failed = held
        held = []
        for (_, promise) in failed { promise?.fail(ChannelError.ioOnClosedChannel) }
        context.close(mode: mode, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }

    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

/// What the application saw (only touched on the test's thread, which is the embedded loop's).
private final class Recorder: @unchecked Sendable {
    var messages: [WebSocketData] = []
    var sendResults: [SendResult] = []
    var drains = 0
    var closes: [CloseFrame] = []
    var notes: [String] = []
}

/// One step of an async handler, run when the test sends it (see ``DriverHarness/step(_:)``).
private typealias HandlerStep = @Sendable (WebSocketConnection) async throws -> Void

/// One server-role connection on an `EmbeddedChannel`: [event counter, driver's handler].
private final class DriverHarness {
    let loop: EmbeddedEventLoop
    let channel: EmbeddedChannel
    let counter = OutboundEventCounter()
    let driver: ConnectionDriver
    let recorder: Recorder
    private var parser = FrameParser(role: .client)
    private let scope: HandlerScope
    private let steps: AsyncStream<HandlerStep>.Continuation?

    enum API: Sendable {
        /// Callbacks that record what they see, and run `onMessage` on each message (default: echo it once).
        case callbacks(onMessage: @Sendable (EventLoopWebSocket, WebSocketData, Recorder) -> Void = { ws, data, _ in ws.send(data) })
        /// An async server handler that runs the steps the test sends, one after the other.
        case task
    }

    init(_ configuration: WebSocketConfiguration, api: API = .callbacks(), loop: EmbeddedEventLoop = EmbeddedEventLoop(),
         topics: TopicRegistry? = nil) throws {
        self.loop = loop
        channel = EmbeddedChannel(loop: loop)
        channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 8080), promise: nil)
        let recorder = Recorder()
        let scope = HandlerScope()
        self.recorder = recorder
        self.scope = scope
        let application: WebSocketApplication
        var executor: EventLoopTaskExecutor?
        switch api {
        case .callbacks(let onMessage):
            steps = nil
            application = .callbacks(WebSocketCallbacks(
                onMessage: { ws, data in
                    recorder.messages.append(data)
                    onMessage(ws, data, recorder)
                },
                onDrain: { _ in recorder.drains += 1 },
                onClose: { _, frame in recorder.closes.append(frame) }
            ))
        case .task:
            let (stream, continuation) = AsyncStream.makeStream(of: HandlerStep.self)
            steps = continuation
            application = .task { ws in
                defer { recorder.closes.append(ws.closeFrame ?? CloseFrame(code: nil, reason: "still open")) }
                for await step in stream { try await step(ws) }
            }
            let loopExecutor = EventLoopTaskExecutor(eventLoop: loop)
            executor = loopExecutor
            Task(executorPreference: loopExecutor) { await scope.run() }
        }
        let settings = ConnectionSettings(role: .server, configuration: configuration, metrics: WebSocketMetrics(role: .server),
                                          logger: testLogger(), scope: scope, topics: topics)
        driver = ConnectionDriver(connection: Connection(role: .server, configuration: settings.coreConfiguration),
                                  settings: settings, info: ConnectionInfo(connectionID: 1), application: application,
                                  eventLoop: loop, handlerExecutor: executor)
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(ChannelConnectionHandler(driver: driver))
        loop.run()  // the async handler starts
    }

    // MARK: Time

    /// Moves the virtual clock to `time` after the connection opened, running what is due.
    func advance(to time: TimeAmount) {
        loop.advanceTime(to: .uptimeNanoseconds(UInt64(time.nanoseconds)))
    }

    /// The virtual time now, since the connection opened.
    var now: TimeAmount { .nanoseconds(Int64(loop.now.uptimeNanoseconds)) }

    // MARK: Input

    /// A client frame (masked unless told otherwise).
    static func clientFrame(_ opcode: Opcode, _ payload: ByteBuffer, fin: Bool = true, masked: Bool = true) -> ByteBuffer {
        var buffer = ByteBuffer()
        FrameWriter.write(fin: fin, opcode: opcode, maskKey: masked ? MaskKey(0x37, 0xfa, 0x21, 0x3d) : nil,
                          payload: payload, to: &buffer)
        return buffer
    }

    static func clientClose(_ code: UInt16, _ reason: String = "") -> ByteBuffer {
        var payload = ByteBuffer(integer: code)
        payload.writeString(reason)
        return clientFrame(.close, payload)
    }

    /// One read batch of one read: the bytes, then a read completion.
    func receive(_ bytes: ByteBuffer) throws {
        try channel.writeInbound(bytes)
    }

    func receive(text: String) throws {
        try receive(Self.clientFrame(.text, ByteBuffer(string: text)))
    }

    /// One read batch of several reads.
    func receiveBatch(_ reads: [ByteBuffer]) {
        for bytes in reads { channel.pipeline.fireChannelRead(bytes) }
        channel.pipeline.fireChannelReadComplete()
    }

    /// Lets the async handler return (it ran out of steps) and runs the loop.
    func endHandler() {
        steps!.finish()
        loop.run()
    }

    /// Sends `step` to the async handler and runs the loop until nothing more can run.
    func step(_ step: @escaping HandlerStep) {
        steps!.yield(step)
        loop.run()
    }

    // MARK: Output

    /// The frames the driver wrote and flushed since the last call, as a client parses them.
    func written() throws -> [Frame] {
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) { parser.append(bytes) }
        var frames: [Frame] = []
        while let frame = try parser.nextFrame() { frames.append(frame) }
        return frames
    }

    var isOpen: Bool { channel.isActive }

    /// Checks that nothing is written until `time`, and exactly `frames` at `time`.
    func expectWritten(_ frames: [Frame], exactlyAt time: TimeAmount,
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        advance(to: time - .nanoseconds(1))
        #expect(try written() == [], "written before \(time)", sourceLocation: sourceLocation)
        advance(to: time)
        #expect(try written() == frames, sourceLocation: sourceLocation)
    }

    /// Checks that the channel is open until `time` and closed at `time`, with nothing more written.
    func expectChannelCloses(exactlyAt time: TimeAmount, sourceLocation: SourceLocation = #_sourceLocation) throws {
        advance(to: time - .nanoseconds(1))
        #expect(isOpen, "closed before \(time)", sourceLocation: sourceLocation)
        advance(to: time)
        #expect(!isOpen, "open at \(time)", sourceLocation: sourceLocation)
        #expect(try written() == [], sourceLocation: sourceLocation)
    }

    /// Closes the channel if it is open and lets the async handler and the scope end.
    func finish() {
        if channel.isActive { channel.close(promise: nil) }
        steps?.finish()
        scope.finish()
        loop.run()
    }
}

// MARK: - Frames as the client sees them

extension Frame {
    fileprivate static func ping(_ counter: UInt64) -> Frame {
        Frame(opcode: .ping, payload: ByteBuffer(integer: counter, endianness: .big))
    }

    fileprivate static func pong(_ payload: ByteBuffer) -> Frame { Frame(opcode: .pong, payload: payload) }

    fileprivate static func text(_ text: String) -> Frame { Frame(opcode: .text, payload: ByteBuffer(string: text)) }

    fileprivate static func close(_ code: UInt16, _ reason: String = "") -> Frame {
        var payload = ByteBuffer(integer: code)
        payload.writeString(reason)
        return Frame(opcode: .close, payload: payload)
    }
}

/// The timers of these tests (each test turns on the ones it checks).
private func timers(pingInterval: TimeAmount? = nil, pongTimeout: TimeAmount = .seconds(5),
                    pongTimeoutAction: WebSocketConfiguration.TimeoutAction = .close(.internalError),
                    idleTimeout: TimeAmount? = nil, closeTimeout: TimeAmount = .seconds(3),
                    outboundHighWaterMark: Int = 1 << 20, inboundQueueSize: Int = 16, inboundQueueBytes: Int = 1 << 20,
                    limits: Limits = .default) -> WebSocketConfiguration {
    WebSocketConfiguration(limits: limits, pingInterval: pingInterval, pongTimeout: pongTimeout,
                           pongTimeoutAction: pongTimeoutAction, idleTimeout: idleTimeout, closeTimeout: closeTimeout,
                           outboundHighWaterMark: outboundHighWaterMark, outboundLowWaterMark: outboundHighWaterMark / 4,
                           inboundQueueSize: inboundQueueSize, inboundQueueBytes: inboundQueueBytes)
}

// MARK: - Time rules

@Suite struct DriverTimerTests {
    @Test func keepalivePingGoesOutAtTheIntervalAndNotBefore() throws {
        let h = try DriverHarness(timers(pingInterval: .seconds(10)))
        defer { h.finish() }
        try h.expectWritten([.ping(1)], exactlyAt: .seconds(10))
        #expect(h.counter.flushes == 1)
        #expect(h.isOpen)
    }

    @Test func aPongWithThePingsPayloadRestartsTheIntervalFromThePong() throws {
        let h = try DriverHarness(timers(pingInterval: .seconds(10), pongTimeout: .seconds(5)))
        defer { h.finish() }
        h.advance(to: .seconds(10))
        #expect(try h.written() == [.ping(1)])
        h.advance(to: .seconds(12))
        try h.receive(DriverHarness.clientFrame(.pong, ByteBuffer(integer: UInt64(1), endianness: .big)))
        // No pong timeout at 15 s (the ping was answered), and the next ping comes one interval
        // after the pong, not after the ping.
        try h.expectWritten([.ping(2)], exactlyAt: .seconds(22))
        #expect(h.isOpen)
        // And its own pong timeout runs from it.
        try h.expectWritten([.close(1011, "keepalive ping timeout")], exactlyAt: .seconds(27))
    }

    @Test func anUnsolicitedPongMovesNothing() throws {
        let h = try DriverHarness(timers(pingInterval: .seconds(10), pongTimeout: .seconds(5)))
        defer { h.finish() }
        h.advance(to: .seconds(5))
        try h.receive(DriverHarness.clientFrame(.pong, ByteBuffer(string: "heartbeat")))
        // The ping still comes at 10 s, not 10 s after the pong.
        try h.expectWritten([.ping(1)], exactlyAt: .seconds(10))
        // A pong that carries another payload does not answer it.
        h.advance(to: .seconds(12))
        try h.receive(DriverHarness.clientFrame(.pong, ByteBuffer(integer: UInt64(7), endianness: .big)))
        try h.expectWritten([.close(1011, "keepalive ping timeout")], exactlyAt: .seconds(15))
    }

    @Test func pongTimeoutClosesWith1011ThenTheTransportAtTheCloseTimeout() throws {
        let h = try DriverHarness(timers(pingInterval: .seconds(10), pongTimeout: .seconds(5), closeTimeout: .seconds(3)))
        defer { h.finish() }
        h.advance(to: .seconds(10))
        #expect(try h.written() == [.ping(1)])
        try h.expectWritten([.close(1011, "keepalive ping timeout")], exactlyAt: .seconds(15))
        // The peer never answers: the transport closes at the close timeout, not before.
        try h.expectChannelCloses(exactlyAt: .seconds(18))
        #expect(h.recorder.closes == [CloseFrame(code: .abnormalClosure)])
    }

    @Test func pongTimeoutWithTheDropActionClosesTheChannelAtOnce() throws {
        let h = try DriverHarness(timers(pingInterval: .seconds(10), pongTimeout: .seconds(5), pongTimeoutAction: .drop))
        defer { h.finish() }
        h.advance(to: .seconds(10))
        #expect(try h.written() == [.ping(1)])
        try h.expectChannelCloses(exactlyAt: .seconds(15))  // and no close frame
        #expect(h.recorder.closes == [CloseFrame(code: .abnormalClosure, reason: "keepalive ping timeout")])
    }

    @Test func idleTimeoutClosesWith1001AndTrafficMovesIt() throws {
        let h = try DriverHarness(timers(idleTimeout: .seconds(10), closeTimeout: .seconds(3)))
        defer { h.finish() }
        h.advance(to: .seconds(4))
        try h.receive(text: "tick")
        #expect(try h.written() == [.text("tick")])
        // Not at 10 s: the message at 4 s moved the deadline to 14 s.
        try h.expectWritten([.close(1001, "idle timeout")], exactlyAt: .seconds(14))
        #expect(h.isOpen)
        // The peer answers the close: the handshake is complete and the channel closes at once.
        h.advance(to: .seconds(15))
        try h.receive(DriverHarness.clientClose(1001))
        #expect(!h.isOpen)
        #expect(h.now == .seconds(15))
        #expect(h.recorder.closes == [CloseFrame(code: .goingAway)])
    }

    @Test func anIdleTimeoutWithASilentPeerEndsAtTheCloseTimeout() throws {
        let h = try DriverHarness(timers(idleTimeout: .seconds(10), closeTimeout: .seconds(3)))
        defer { h.finish() }
        h.advance(to: .seconds(10))
        #expect(try h.written() == [.close(1001, "idle timeout")])
        try h.expectChannelCloses(exactlyAt: .seconds(13))
        #expect(h.recorder.closes == [CloseFrame(code: .abnormalClosure)])
    }

    /// An endpoint that closes with 4000 "go" when it gets a message.
    fileprivate static let closesOnMessage = DriverHarness.API.callbacks { ws, _, _ in
        try? ws.close(code: CloseCode(4000), reason: "go")
    }

    /// A silent peer is dropped at the close timeout; a peer that answers completes the
    /// handshake and the channel closes at once.
    @Test(arguments: [false, true])
    func aServerInitiatedClose(peerAnswers: Bool) throws {
        let h = try DriverHarness(timers(closeTimeout: .seconds(3)), api: Self.closesOnMessage)
        defer { h.finish() }
        h.advance(to: .seconds(1))
        try h.receive(text: "close me")
        #expect(try h.written() == [.close(4000, "go")])
        if peerAnswers {
            h.advance(to: .seconds(2))
            try h.receive(DriverHarness.clientClose(4000))
            #expect(!h.isOpen)
            #expect(h.now == .seconds(2))
            #expect(try h.written() == [])  // nothing more: the close was already sent
            #expect(h.recorder.closes == [CloseFrame(code: CloseCode(4000))])
        } else {
            try h.expectChannelCloses(exactlyAt: .seconds(4))
            #expect(h.recorder.closes == [CloseFrame(code: .abnormalClosure)])
        }
    }

    @Test func aClientInitiatedHandshakeIsEchoedAndTheChannelClosesAtOnce() throws {
        let h = try DriverHarness(timers(pingInterval: .seconds(10), closeTimeout: .seconds(3)))
        defer { h.finish() }
        h.advance(to: .seconds(1))
        try h.receive(DriverHarness.clientClose(1000, "bye"))
        #expect(try h.written() == [.close(1000)])  // the code echoed, without the reason
        #expect(!h.isOpen)
        #expect(h.now == .seconds(1))
        #expect(h.recorder.closes == [CloseFrame(code: .normalClosure, reason: "bye")])
        #expect(LoopTimerWheel.liveConnectionCount(on: h.loop) == 0)
    }

    @Test func aServerShutdownClosesWith1001AndWaitsTheCloseTimeout() throws {
        let h = try DriverHarness(timers(pingInterval: .seconds(10), closeTimeout: .seconds(3)))
        defer { h.finish() }
        h.advance(to: .seconds(2))
        h.channel.pipeline.fireUserInboundEventTriggered(ServerShutdownEvent())
        h.loop.run()
        #expect(try h.written() == [.close(1001, "server shutting down")])
        // No keepalive ping at 10 s while closing; the transport closes at the close timeout.
        try h.expectChannelCloses(exactlyAt: .seconds(5))
        h.advance(to: .seconds(10))
        #expect(try h.written() == [])
    }
}

// MARK: - A peer that stopped reading

@Suite struct DriverStalledPeerTests {
    /// The server closes the transport once its last frame is written. A peer that stopped
    /// reading never lets it be written: the close timeout bounds the wait.
    @Test(arguments: ["peer's close", "protocol error"])
    func aPeerThatStopsReadingCannotKeepAClosedConnectionOpen(_ ending: String) throws {
        let h = try DriverHarness(timers(closeTimeout: .seconds(3)))
        defer { h.finish() }
        h.counter.holdsWrites = true
        h.advance(to: .seconds(1))
        if ending == "peer's close" {
            try h.receive(DriverHarness.clientClose(1000))
        } else {
            try h.receive(DriverHarness.clientFrame(.text, ByteBuffer(string: "hi"), masked: false))
        }
        #expect(h.counter.held.count == 1)  // the close frame, never written
        try h.expectChannelCloses(exactlyAt: .seconds(4))
        #expect(LoopTimerWheel.liveConnectionCount(on: h.loop) == 0)
    }
}

// MARK: - Protocol errors

/// A peer's violation and what it must close with.
enum Violation: String, CaseIterable, Sendable {
    case unmaskedFrame, invalidUTF8, messageTooBig, reservedOpcode, fragmentedControlFrame

    var bytes: ByteBuffer {
        switch self {
        case .unmaskedFrame: DriverHarness.clientFrame(.text, ByteBuffer(string: "hi"), masked: false)
        case .invalidUTF8: DriverHarness.clientFrame(.text, ByteBuffer(bytes: [0x68, 0xc0, 0xaf]))
        case .messageTooBig: DriverHarness.clientFrame(.binary, ByteBuffer(repeating: 7, count: 17))
        case .reservedOpcode: ByteBuffer(bytes: [0x83, 0x80, 1, 2, 3, 4])  // FIN, opcode 0x3, masked, empty
        case .fragmentedControlFrame: DriverHarness.clientFrame(.ping, ByteBuffer(), fin: false)
        }
    }

    var error: ProtocolError {
        switch self {
        case .unmaskedFrame: ProtocolError(.unmaskedFrame)
        case .invalidUTF8: ProtocolError(.invalidUTF8)
        case .messageTooBig: ProtocolError(.messageTooBig(limit: 16))
        case .reservedOpcode: ProtocolError(.reservedOpcode(3))
        case .fragmentedControlFrame: ProtocolError(.fragmentedControlFrame)
        }
    }
}

@Suite struct DriverProtocolErrorTests {
    @Test(arguments: Violation.allCases)
    func aProtocolErrorClosesWithItsCodeAndClosesTheChannel(_ violation: Violation) throws {
        let h = try DriverHarness(timers(pingInterval: .seconds(10), limits: Limits(maxFrameSize: 1024, maxMessageSize: 16)))
        defer { h.finish() }
        h.advance(to: .seconds(1))
        try h.receive(violation.bytes)
        let error = violation.error
        #expect(try h.written() == [.close(error.closeCode.rawValue, error.description)])
        #expect(!h.isOpen)
        #expect(h.recorder.messages == [])
        #expect(h.recorder.closes == [CloseFrame(code: error.closeCode, reason: error.description)])
        #expect(LoopTimerWheel.liveConnectionCount(on: h.loop) == 0)
    }
}

// MARK: - Flushes

@Suite struct DriverFlushTests {
    fileprivate static let echoThreeTimes = DriverHarness.API.callbacks { ws, data, _ in
        for _ in 0..<3 { ws.send(data) }
    }

    @Test func sendsInsideOneReadBatchAreFlushedOnce() throws {
        let h = try DriverHarness(timers(), api: Self.echoThreeTimes)
        defer { h.finish() }
        // Two reads in one batch, each a message answered with three sends: one flush.
        h.receiveBatch([DriverHarness.clientFrame(.text, ByteBuffer(string: "a")),
                        DriverHarness.clientFrame(.text, ByteBuffer(string: "b"))])
        #expect(h.counter.flushes == 1)
        #expect(try h.written() == [.text("a"), .text("a"), .text("a"), .text("b"), .text("b"), .text("b")])
        // One read carrying two messages: one flush.
        try h.receive(DriverHarness.clientFrame(.text, ByteBuffer(string: "c"))
                      + DriverHarness.clientFrame(.text, ByteBuffer(string: "d")))
        #expect(h.counter.flushes == 2)
        #expect(try h.written() == [.text("c"), .text("c"), .text("c"), .text("d"), .text("d"), .text("d")])
        // A read batch that produces nothing flushes nothing.
        h.receiveBatch([])
        #expect(h.counter.flushes == 2)
    }

    @Test func aPingAnsweredInsideTheBatchIsFlushedWithIt() throws {
        let h = try DriverHarness(timers())
        defer { h.finish() }
        h.receiveBatch([DriverHarness.clientFrame(.ping, ByteBuffer(string: "p")),
                        DriverHarness.clientFrame(.text, ByteBuffer(string: "m"))])
        #expect(h.counter.flushes == 1)
        #expect(try h.written() == [.pong(ByteBuffer(string: "p")), .text("m")])
    }

    @Test func sendsOutsideAReadBatchAreFlushedOnceAtTheEndOfTheLoopTurn() throws {
        let h = try DriverHarness(timers())
        defer { h.finish() }
        for text in ["x", "y", "z"] { #expect(h.driver.send(.text, ByteBuffer(string: text)) == .sent) }
        #expect(h.counter.flushes == 0)
        #expect(try h.written() == [])  // written, not yet flushed
        h.loop.run()
        #expect(h.counter.flushes == 1)
        #expect(try h.written() == [.text("x"), .text("y"), .text("z")])
        h.loop.run()
        #expect(h.counter.flushes == 1)
    }

    @Test func sendsOfAnAsyncHandlerOnTheLoopAreFlushedOnce() throws {
        let h = try DriverHarness(timers(), api: .task)
        defer { h.finish() }
        h.step { ws in
            for text in ["x", "y", "z"] { try await ws.send(text: text) }
        }
        #expect(h.counter.flushes == 1)
        #expect(try h.written() == [.text("x"), .text("y"), .text("z")])
    }
}

// MARK: - Backpressure

@Suite struct DriverBackpressureTests {
    fileprivate static let recordsItsEcho = DriverHarness.API.callbacks { ws, data, recorder in
        recorder.sendResults.append(ws.send(data))
    }

    private func setWritable(_ h: DriverHarness, _ writable: Bool) {
        h.channel.isWritable = writable
        h.channel.pipeline.fireChannelWritabilityChanged()
    }

    /// The hard limit counts what a message adds to the outbound buffer: its frame's header, or
    /// every fragment's, with its payload. A message whose frames would pass the limit meets the
    /// policy; one that reaches it exactly is written; an empty buffer takes any message of up
    /// to the limit's payload. (Sends counted their payload only, and a published message
    /// fragmented by `fragmentSize` one header: FuzzTopics took a buffer to the limit plus the
    /// header bytes.)
    @Test func theHardLimitCountsTheFrameHeadersOfSendsAndPublishedMessages() throws {
        func configuration(fragmentSize: Int?) -> WebSocketConfiguration {
            WebSocketConfiguration(pingInterval: nil, outboundHighWaterMark: 64, outboundLowWaterMark: 16,
                                   outboundHardLimit: 100, backpressurePolicy: .drop, fragmentSize: fragmentSize)
        }
        let bytes = { (count: Int) in ByteBuffer(repeating: 7, count: count) }
        let registry = TopicRegistry()
        // Sends outside a read batch are flushed at the end of the loop turn: until then the
        // channel buffers them. Over the high-water mark (64) the channel turns unwritable, as NIO's does.
        let h = try DriverHarness(configuration(fragmentSize: nil), topics: registry)
        defer { h.finish() }
        #expect(h.driver.send(.binary, bytes(101)) == .dropped)  // over the limit alone
        #expect(h.driver.send(.binary, bytes(100)) == .sent)     // into an empty buffer: 102 bytes
        setWritable(h, false)
        #expect(h.driver.send(.text, bytes(0)) == .dropped)
        h.loop.run()
        setWritable(h, true)
        #expect(try h.written().map(\.payload.readableBytes) == [100])
        #expect(h.driver.send(.binary, bytes(96)) == .sent)      // 98 bytes
        setWritable(h, false)
        #expect(h.driver.send(.binary, bytes(1)) == .dropped)    // 3 more: 101
        #expect(h.driver.send(.binary, bytes(0)) == .buffered)   // 2 more: 100, the limit
        #expect(h.driver.bufferedBytes == 100)
        h.loop.run()
        setWritable(h, true)
        #expect(try h.written().map(\.payload.readableBytes) == [96, 0])
        #expect(try h.driver.subscribe(to: "plain"))
        registry.publish(SharedFrame(opcode: .binary, payload: bytes(96)), to: "plain")
        setWritable(h, false)
        registry.publish(SharedFrame(opcode: .binary, payload: bytes(1)), to: "plain")
        #expect(h.driver.bufferedBytes == 98)
        h.loop.run()
        #expect(try h.written().map(\.payload.readableBytes) == [96])

        // Fragments of 10 payload bytes, each frame 12 bytes with its header.
        let f = try DriverHarness(configuration(fragmentSize: 10), topics: registry)
        defer { f.finish() }
        #expect(f.driver.send(.binary, bytes(70)) == .sent)     // 7 frames: 84 bytes
        setWritable(f, false)
        #expect(f.driver.send(.binary, bytes(14)) == .dropped)  // 2 frames, 18 bytes: 102 (one frame would fit)
        #expect(f.driver.send(.binary, bytes(0)) == .buffered)  // 86 bytes
        #expect(try f.driver.subscribe(to: "fragments"))
        // 12 bytes in 2 fragments: 16 more, 102 (its unfragmented frame, 14 bytes, would fit).
        registry.publish(SharedFrame(opcode: .binary, payload: bytes(12)), to: "fragments")
        #expect(f.driver.bufferedBytes == 86)
        registry.publish(SharedFrame(opcode: .binary, payload: bytes(10)), to: "fragments")  // one frame, 12 bytes: 98
        #expect(f.driver.bufferedBytes == 98)
        f.loop.run()
        #expect(try f.written().map(\.payload.readableBytes) == [10, 10, 10, 10, 10, 10, 10, 0, 10])
    }

    @Test func aBufferedSendIsReportedByOneDrain() throws {
        let h = try DriverHarness(timers(), api: Self.recordsItsEcho)
        defer { h.finish() }
        let results = { h.recorder.sendResults }
        // A writability change without a buffered send before it is no drain.
        setWritable(h, false)
        setWritable(h, true)
        #expect(h.recorder.drains == 0)

        try h.receive(text: "a")
        #expect(results() == [.sent])
        setWritable(h, false)
        try h.receive(text: "b")
        try h.receive(text: "c")
        #expect(results() == [.sent, .buffered, .buffered])
        #expect(h.recorder.drains == 0)
        setWritable(h, true)
        #expect(h.recorder.drains == 1)  // one drain for both buffered sends
        setWritable(h, false)
        setWritable(h, true)
        #expect(h.recorder.drains == 1)  // nothing was buffered since
        #expect(try h.written() == [.text("a"), .text("b"), .text("c")])
    }

    @Test func anAsyncSendWaitsForTheDrain() throws {
        let h = try DriverHarness(timers(), api: .task)
        defer { h.finish() }
        let recorder = h.recorder
        setWritable(h, false)
        h.step { ws in
            try await ws.send(text: "big")
            recorder.notes.append("sent")
        }
        #expect(try h.written() == [.text("big")])  // written and flushed; the send waits
        #expect(recorder.notes == [])
        h.advance(to: .seconds(1))
        #expect(recorder.notes == [])
        setWritable(h, true)
        h.loop.run()
        #expect(recorder.notes == ["sent"])
        #expect(h.recorder.drains == 0)  // drains are the callbacks' only
    }

    @Test func aWaitingAsyncSendFailsWhenTheConnectionEnds() throws {
        let h = try DriverHarness(timers(), api: .task)
        defer { h.finish() }
        let recorder = h.recorder
        setWritable(h, false)
        h.step { ws in
            do {
                try await ws.send(text: "big")
                recorder.notes.append("sent")
            } catch {
                recorder.notes.append("\(error)")
            }
        }
        #expect(recorder.notes == [])
        h.channel.close(promise: nil)
        h.loop.run()
        #expect(recorder.notes == ["\(WebSocketError.closed(CloseFrame(code: .abnormalClosure)))"])
    }

    @Test func aFullInboundQueueHoldsReadsUntilTheConsumerTakesEnough() throws {
        // A byte budget of 1: every message is over it, so the count decides.
        let h = try DriverHarness(timers(inboundQueueSize: 4, inboundQueueBytes: 1), api: .task)
        defer { h.finish() }
        // As NIO's autoRead does: a read after each read batch.
        for index in 1...3 {
            try h.receive(text: "m\(index)")
            h.channel.read()
            #expect(h.counter.reads == index)
        }
        try h.receive(text: "m4")  // the queue is full: 4 messages nobody took
        h.channel.read()
        #expect(h.counter.reads == 3)  // held
        // The consumer takes one: 3 left, over the low-water mark (2): still held.
        let recorder = h.recorder
        let takeOne: HandlerStep = { ws in
            var messages = ws.messages.makeAsyncIterator()
            if case .text(let text) = try await messages.next() { recorder.notes.append(text) }
        }
        h.step(takeOne)
        #expect(recorder.notes == ["m1"])
        #expect(h.counter.reads == 3)
        // One more: 2 left, the held read goes through.
        h.step(takeOne)
        #expect(recorder.notes == ["m1", "m2"])
        #expect(h.counter.reads == 4)
        // And reads pass again.
        try h.receive(text: "m5")
        h.channel.read()
        #expect(h.counter.reads == 5)
        for _ in 0..<3 { h.step(takeOne) }
        #expect(recorder.notes == ["m1", "m2", "m3", "m4", "m5"])
    }

    /// Past `inboundQueueSize` unread messages, reads go on within `inboundQueueBytes`: a handler
    /// that never reads still has its peer's pings answered; past both, reads are held.
    @Test func readsGoOnPastTheQueueSizeWithinItsByteBudget() throws {
        let h = try DriverHarness(timers(inboundQueueSize: 2, inboundQueueBytes: 1000), api: .task)
        defer { h.finish() }
        // One-byte messages cost 65 bytes each: 15 are 975 bytes, under the budget.
        for index in 1...15 {
            try h.receive(text: "x")
            h.channel.read()
            #expect(h.counter.reads == index)
        }
        try h.receive(DriverHarness.clientFrame(.ping, ByteBuffer(string: "there?")))
        #expect(try h.written() == [.pong(ByteBuffer(string: "there?"))])
        h.channel.read()
        #expect(h.counter.reads == 16)
        try h.receive(text: "x")  // 1040 bytes in 16 messages: over both
        h.channel.read()
        #expect(h.counter.reads == 16)  // held
        // The consumer takes 8 (520 bytes left, over half the budget): still held; one more
        // (455 bytes): the held read goes through.
        let recorder = h.recorder
        let take: (Int) -> HandlerStep = { count in
            { ws in
                var messages = ws.messages.makeAsyncIterator()
                for _ in 0..<count { if case .text(let text) = try await messages.next() { recorder.notes.append(text) } }
            }
        }
        h.step(take(8))
        #expect(recorder.notes.count == 8)
        #expect(h.counter.reads == 16)
        h.step(take(1))
        #expect(recorder.notes.count == 9)
        #expect(h.counter.reads == 17)
    }

    /// A handler that returned will never take the messages left in its queue: the reads they
    /// held go through again, so that the peer's answer to the server's close is read.
    @Test func aHandlerThatReturnsWithAFullQueueStillCompletesTheClosingHandshake() throws {
        let h = try DriverHarness(timers(closeTimeout: .seconds(3), inboundQueueSize: 2, inboundQueueBytes: 1), api: .task)
        defer { h.finish() }
        try h.receive(text: "m1")
        h.channel.read()
        try h.receive(text: "m2")
        h.channel.read()
        #expect(h.counter.reads == 1)  // held: the queue is full
        h.advance(to: .seconds(1))
        h.endHandler()
        #expect(try h.written() == [.close(1000)])
        #expect(h.counter.reads == 2)  // the held read went through
        // Reads are no longer held, and what arrives now is dropped, not queued for nobody.
        try h.receive(text: "m3")
        h.channel.read()
        #expect(h.counter.reads == 3)
        h.advance(to: .seconds(2))
        try h.receive(DriverHarness.clientClose(1000))
        #expect(!h.isOpen)
        #expect(h.now == .seconds(2))
        #expect(h.driver.connection.closeResult == CloseFrame(code: .normalClosure))
    }
}

// MARK: - Lifetime

@Suite struct DriverLifetimeTests {
    @Test(arguments: ["callbacks", "task"])
    func aClosedConnectionFreesItsDriverAndItsTimerSlot(api: String) throws {
        let loop = EmbeddedEventLoop()
        weak var first: ConnectionDriver?
        weak var second: ConnectionDriver?
        do {
            let a = try DriverHarness(timers(pingInterval: .seconds(10)), api: api == "task" ? .task : .callbacks(), loop: loop)
            let b = try DriverHarness(timers(pingInterval: .seconds(10)), api: api == "task" ? .task : .callbacks(), loop: loop)
            first = a.driver
            second = b.driver
            #expect(LoopTimerWheel.liveConnectionCount(on: loop) == 2)

            // A clean close frees the first one's slot; the other keeps its timers.
            loop.advanceTime(to: .uptimeNanoseconds(1_000_000_000))
            try a.receive(DriverHarness.clientClose(1000))
            #expect(!a.isOpen)
            #expect(LoopTimerWheel.liveConnectionCount(on: loop) == 1)
            loop.advanceTime(to: .uptimeNanoseconds(10_000_000_000))
            #expect(try b.written() == [.ping(1)])
            #expect(try a.written() == [.close(1000)])

            // An abrupt close (the peer went away) frees the second one's.
            b.channel.close(promise: nil)
            #expect(LoopTimerWheel.liveConnectionCount(on: loop) == 0)
            a.finish()
            b.finish()
        }
        #expect(first == nil)
        #expect(second == nil)
    }
}
