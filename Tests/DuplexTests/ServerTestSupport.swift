import Duplex
import DuplexCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing

// Helpers of the server tests: an in-process server, a small test client made of raw NIO and
// DuplexCore (frames built with FrameWriter, parsed with FrameParser), and bounded waits.

/// A bounded wait that ran out.
struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// The test client's own failures (connection closed while waiting, bad handshake answer...).
struct TestClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The event loops of the server tests' servers and clients: their own, so that the big
/// messages and floods here never hold up the loops other test suites run on (NIO's singleton).
let testLoop = MultiThreadedEventLoopGroup(numberOfThreads: 2)

/// A loop of its own for tests that measure time, so that the heavy tests running at the same
/// time (16 MiB messages, floods) cannot hold up their timers on a shared loop.
let timerLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// A logger for servers under test: quiet unless DUPLEX_TEST_LOG is set (e.g. to `debug`).
func testLogger(_ label: String = "duplex.test") -> Logger {
    var logger = Logger(label: label)
    let level = ProcessInfo.processInfo.environment["DUPLEX_TEST_LOG"].flatMap(Logger.Level.init(rawValue:))
    logger.logLevel = level ?? .critical
    return logger
}

// MARK: - Server

/// Starts a server on 127.0.0.1 with a free port, runs `body` with its port, shuts it down.
func withServer(
    _ router: WebSocketRouter,
    webSocket: WebSocketConfiguration = WebSocketConfiguration(),
    tls: TLSConfiguration? = nil,
    handshakeTimeout: TimeAmount = .seconds(10),
    maxHandshakeHeaderBytes: Int = ServerHandshake.defaultMaxHeaderBytes,
    maxRequestBodyBytes: Int = 1 << 20,
    group: any EventLoopGroup = testLoop,
    _ body: (_ port: Int, _ server: WebSocketServer) async throws -> Void
) async throws {
    let server = WebSocketServer(
        configuration: .init(host: "127.0.0.1", port: 0, tls: tls, webSocket: webSocket,
                             handshakeTimeout: handshakeTimeout, maxHandshakeHeaderBytes: maxHandshakeHeaderBytes,
                             maxRequestBodyBytes: maxRequestBodyBytes),
        router: router, group: group, logger: testLogger()
    )
    let address = try await server.start()
    let port = try #require(address.port)
    do {
        try await body(port, server)
    } catch {
        await server.shutdown(gracePeriod: .milliseconds(100))
        throw error
    }
    await server.shutdown(gracePeriod: .milliseconds(100))
}

/// Settings with keepalive pings off (so no unexpected pings reach the test client), otherwise as given.
func quietConfiguration(
    limits: Limits = .default,
    pingInterval: TimeAmount? = nil,
    pongTimeout: TimeAmount = .seconds(20),
    idleTimeout: TimeAmount? = nil,
    closeTimeout: TimeAmount = .seconds(5),
    outboundHighWaterMark: Int = 1 << 20,
    outboundLowWaterMark: Int = 256 << 10,
    outboundHardLimit: Int = 16 << 20,
    backpressurePolicy: WebSocketConfiguration.BackpressurePolicy = .close(.tryAgainLater),
    inboundQueueSize: Int = 16
) -> WebSocketConfiguration {
    WebSocketConfiguration(
        limits: limits, pingInterval: pingInterval, pongTimeout: pongTimeout, idleTimeout: idleTimeout,
        closeTimeout: closeTimeout, outboundHighWaterMark: outboundHighWaterMark,
        outboundLowWaterMark: outboundLowWaterMark, outboundHardLimit: outboundHardLimit,
        backpressurePolicy: backpressurePolicy, inboundQueueSize: inboundQueueSize
    )
}

/// An async echo endpoint: `for try await m in ws.messages { try await ws.send(m) }`.
func asyncEcho(configuration: WebSocketConfiguration? = nil, closes: Mailbox<CloseFrame?>? = nil) -> WebSocketEndpoint {
    WebSocketEndpoint(configuration: configuration) { ws in
        do {
            for try await message in ws.messages { try await ws.send(message) }
        } catch {
            closes?.put(ws.closeFrame)
            throw error
        }
        closes?.put(ws.closeFrame)
    }
}

/// A callback echo endpoint: each message is sent back from the event loop.
func callbackEcho(configuration: WebSocketConfiguration? = nil, closes: Mailbox<CloseFrame>? = nil) -> WebSocketEndpoint {
    WebSocketEndpoint(configuration: configuration, callbacks: WebSocketCallbacks(
        onMessage: { ws, data in ws.send(data) },
        onClose: { _, frame in closes?.put(frame) }
    ))
}

/// A queue of values produced somewhere (a server handler, a callback) and awaited by a test
/// with a bounded wait.
final class Mailbox<T: Sendable>: Sendable {
    private struct State {
        var items: [T] = []
        var waiters: [(id: Int, promise: EventLoopPromise<T>)] = []
        var nextID = 0
    }

    private let state = NIOLockedValueBox(State())
    private let loop = testLoop.any()

    init() {}

    func put(_ item: T) {
        let waiter = state.withLockedValue { state -> EventLoopPromise<T>? in
            if !state.waiters.isEmpty { return state.waiters.removeFirst().promise }
            state.items.append(item)
            return nil
        }
        waiter?.succeed(item)
    }

    /// Values put and not taken yet.
    var pending: [T] { state.withLockedValue { $0.items } }

    func take(timeout: TimeAmount = .seconds(10), _ what: String = "a value") async throws -> T {
        let promise = loop.makePromise(of: T.self)
        let (ready, id) = state.withLockedValue { state -> (T?, Int) in
            if !state.items.isEmpty { return (state.items.removeFirst(), -1) }
            state.nextID += 1
            state.waiters.append((state.nextID, promise))
            return (nil, state.nextID)
        }
        if let ready {
            promise.succeed(ready)
        } else {
            loop.scheduleTask(in: timeout) { [state] in
                let expired = state.withLockedValue { state -> Bool in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return false }
                    state.waiters.remove(at: index)
                    return true
                }
                if expired { promise.fail(TestTimeout(what: what)) }
            }
        }
        return try await promise.futureResult.get()
    }
}

/// A counter shared between a server handler and a test.
final class Counter: Sendable {
    private let value = NIOLockedValueBox(0)
    init() {}
    func increment(by n: Int = 1) { value.withLockedValue { $0 += n } }
    var current: Int { value.withLockedValue { $0 } }
}

/// A one-shot gate a server handler waits on until the test opens it.
final class Gate: Sendable {
    private let promise = testLoop.any().makePromise(of: Void.self)
    init() {}
    func open() { promise.succeed() }
    func wait() async { try? await promise.futureResult.get() }
}

/// Polls `condition` every few milliseconds until it holds, at most `timeout`.
func eventually(_ what: String, timeout: Duration = .seconds(5), _ condition: @Sendable () async -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !(await condition()) {
        guard clock.now < deadline else { throw TestTimeout(what: what) }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// Waits until `counter` is positive and then has not changed for `quiet` (at most `timeout`);
/// returns its value. For "this stopped making progress" checks.
func waitUntilStable(_ counter: Counter, quiet: Duration = .milliseconds(300), timeout: Duration = .seconds(10)) async throws -> Int {
    try await eventually("progress") { counter.current > 0 }
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var last = counter.current
    var stableSince = clock.now
    while clock.now - stableSince < quiet {
        guard clock.now < deadline else { throw TestTimeout(what: "the counter to settle") }
        try await Task.sleep(for: .milliseconds(10))
        let now = counter.current
        if now != last {
            last = now
            stableSince = clock.now
        }
    }
    return last
}

// MARK: - Test client

/// What the test client received, reassembled from frames.
enum WSEvent: Sendable, Equatable, CustomStringConvertible {
    case text(String)
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// A close frame: its code (nil for an empty payload) and reason.
    case close(code: UInt16?, reason: String)

    var description: String {
        switch self {
        case .text(let s): "text(\(s.count > 64 ? "\(s.utf8.count) bytes" : s))"
        case .binary(let b): "binary(\(b.count) bytes)"
        case .ping(let b): "ping(\(b))"
        case .pong(let b): "pong(\(b))"
        case .close(let code, let reason): "close(\(code.map(String.init) ?? "none"), \"\(reason)\")"
        }
    }

    static func == (lhs: WSEvent, rhs: WSEvent) -> Bool {
        switch (lhs, rhs) {
        case (.text(let a), .text(let b)): a == b
        case (.binary(let a), .binary(let b)), (.ping(let a), .ping(let b)), (.pong(let a), .pong(let b)): sameBytes(a, b)
        case (.close(let c1, let r1), .close(let c2, let r2)): c1 == c2 && r1 == r2
        default: false
        }
    }
}

/// A parsed HTTP response.
struct HTTPAnswer: Sendable {
    var status: Int
    var statusLine: String
    var headers: HTTPFields
    var body: String
}

/// The client side's channel handler: in HTTP mode it collects bytes; once a `101` response
/// head arrives (when it expects an upgrade) it parses WebSocket frames with DuplexCore's
/// `FrameParser(role: .client)`, reassembles messages, answers pings and the server's close
/// frame when told to, and wakes the waiters of the test.
final class TestClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let expectsUpgrade: Bool
    var autoPong: Bool
    var autoCloseReply: Bool

    var raw = ByteBuffer()
    var responseHead: HTTPAnswer?
    var parser: FrameParser?
    var events = CircularBuffer<WSEvent>()
    var protocolError: ProtocolError?
    var closed = false
    var sentClose = false
    var pongsReceived = 0
    /// Whether pongs become events (or are only counted, for floods).
    var recordPongs = true
    var bytesReceived = 0
    private var fragments: (opcode: Opcode, bytes: [UInt8])?
    private var context: ChannelHandlerContext?
    private var waiters: [Int: () -> Bool] = [:]
    private var nextWaiter = 0

    /// Written as soon as the connection is up, from the event loop (the upgrade request).
    private var firstBytes: ByteBuffer?

    init(expectsUpgrade: Bool, autoPong: Bool, autoCloseReply: Bool, firstBytes: ByteBuffer? = nil) {
        self.expectsUpgrade = expectsUpgrade
        self.autoPong = autoPong
        self.autoCloseReply = autoCloseReply
        self.firstBytes = firstBytes
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { channelActive(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        if let bytes = firstBytes {
            firstBytes = nil
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        bytesReceived += bytes.readableBytes
        if parser != nil {
            parser!.append(bytes)
            parseFrames()
        } else {
            raw.writeBuffer(&bytes)
            if expectsUpgrade && responseHead == nil, let head = Self.parseHead(&raw) {
                responseHead = head
                if head.status == 101 {
                    parser = FrameParser(role: .client, maxFrameSize: Limits.large.maxFrameSize * 2)
                    parser!.append(raw)
                    raw.clear()
                    parseFrames()
                }
            }
        }
        notify()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        notify()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func parseFrames() {
        guard protocolError == nil else { return }
        do {
            while let frame = try parser!.nextFrame() {
                handle(frame)
            }
        } catch {
            protocolError = error
        }
    }

    private func handle(_ frame: Frame) {
        var payload: [UInt8] { Array(frame.payload.readableBytesView) }
        switch frame.opcode {
        case .ping:
            events.append(.ping(payload))
            if autoPong && !sentClose { write(.pong, frame.payload) }
        case .pong:
            pongsReceived += 1
            if recordPongs { events.append(.pong(payload)) }
        case .close:
            var p = frame.payload
            let code = p.readInteger(as: UInt16.self)
            let reason = p.readString(length: p.readableBytes) ?? ""
            events.append(.close(code: code, reason: reason))
            if autoCloseReply && !sentClose {
                var reply = ByteBuffer()
                if let code { reply.writeInteger(code) }
                write(.close, reply)
                sentClose = true
            }
        case .text, .binary:
            if frame.fin {
                events.append(frame.opcode == .text ? .text(String(decoding: payload, as: UTF8.self)) : .binary(payload))
            } else {
                fragments = (frame.opcode, payload)
            }
        case .continuation:
            guard var message = fragments else {
                protocolError = ProtocolError(.unexpectedContinuation)
                return
            }
            message.bytes += payload
            if frame.fin {
                fragments = nil
                events.append(message.opcode == .text ? .text(String(decoding: message.bytes, as: UTF8.self))
                                                      : .binary(message.bytes))
            } else {
                fragments = message
            }
        }
    }

    func write(_ opcode: Opcode, _ payload: ByteBuffer, fin: Bool = true, masked: Bool = true,
               reservedBits: ReservedBits = []) {
        var buffer = ByteBuffer()
        FrameWriter.write(fin: fin, reservedBits: reservedBits, opcode: opcode,
                          maskKey: masked ? MaskKey.random() : nil, payload: payload, to: &buffer)
        if opcode == .close { sentClose = true }
        context?.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    /// Parses (and consumes) a complete response head and, with a `Content-Length`, its body.
    static func parseHead(_ raw: inout ByteBuffer, withBody: Bool = false) -> HTTPAnswer? {
        let view = raw.readableBytesView
        let marker: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = view.firstRange(of: marker) else { return nil }
        let headLength = end.upperBound - view.startIndex
        let text = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        var headers = HTTPFields()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(name: String(line[..<colon]),
                        value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var bodyLength = 0
        if withBody {
            bodyLength = headers.first("Content-Length").flatMap { Int($0) } ?? 0
            guard raw.readableBytes >= headLength + bodyLength else { return nil }
        }
        raw.moveReaderIndex(forwardBy: headLength)
        let body = raw.readString(length: bodyLength) ?? ""
        return HTTPAnswer(status: status, statusLine: statusLine, headers: headers, body: body)
    }

    /// Registers a check run now and after every change until it returns true.
    func addWaiter(_ check: @escaping () -> Bool) -> Int? {
        if check() { return nil }
        nextWaiter += 1
        waiters[nextWaiter] = check
        return nextWaiter
    }

    func removeWaiter(_ id: Int) -> Bool { waiters.removeValue(forKey: id) != nil }

    private func notify() {
        for (id, check) in waiters where check() {
            waiters[id] = nil
        }
    }
}

/// A raw TCP connection to the server with the test handler: HTTP requests as text, WebSocket
/// frames built by hand, and bounded waits for what comes back.
final class TestClient: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<TestClientHandler>
    /// The 101 response head of a WebSocket client.
    let handshake: HTTPAnswer?

    var eventLoop: any EventLoop { channel.eventLoop }

    private init(channel: any Channel, handler: NIOLoopBound<TestClientHandler>, handshake: HTTPAnswer?) {
        self.channel = channel
        self.handler = handler
        self.handshake = handshake
    }

    private static func open(port: Int, expectsUpgrade: Bool, autoPong: Bool, autoCloseReply: Bool,
                             tls: NIOSSLContext?, group: any EventLoopGroup, receiveBuffer: Int? = nil,
                             firstBytes: ByteBuffer? = nil) async throws -> (any Channel, NIOLoopBound<TestClientHandler>) {
        let made = NIOLockedValueBox<NIOLoopBound<TestClientHandler>?>(nil)
        var bootstrap = ClientBootstrap(group: group).channelOption(.socketOption(.tcp_nodelay), value: 1)
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: "localhost"))
                    }
                    let handler = TestClientHandler(expectsUpgrade: expectsUpgrade, autoPong: autoPong,
                                                    autoCloseReply: autoCloseReply, firstBytes: firstBytes)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    made.withLockedValue { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        // Kept from the initializer: the pipeline may already be gone if the server was quick to close.
        guard let handler = made.withLockedValue({ $0 }) else { throw TestClientError("no handler") }
        return (channel, handler)
    }

    /// A plain TCP connection (HTTP tests, hand-written upgrade requests).
    /// - Parameter sending: bytes written from the event loop as soon as the connection is up.
    static func raw(port: Int, group: any EventLoopGroup = testLoop, tls: NIOSSLContext? = nil,
                    sending: String? = nil) async throws -> TestClient {
        let (channel, handler) = try await open(port: port, expectsUpgrade: false, autoPong: false, autoCloseReply: false,
                                                tls: tls, group: group, firstBytes: sending.map { ByteBuffer(string: $0) })
        return TestClient(channel: channel, handler: handler, handshake: nil)
    }

    /// Opens a WebSocket with DuplexCore's `ClientHandshake` and checks the 101 answer with it.
    /// - Throws: ``TestClientError`` when the server does not answer 101 (see ``handshakeAnswer(...)``).
    static func webSocket(
        port: Int, group: any EventLoopGroup = testLoop, path: String = "/echo", subprotocols: [String] = [], origin: String? = nil,
        extraHeaders: HTTPFields = [:], autoPong: Bool = true, autoCloseReply: Bool = true,
        tls: NIOSSLContext? = nil, withRequest early: ByteBuffer? = nil, receiveBuffer: Int? = nil
    ) async throws -> TestClient {
        let handshake = ClientHandshake(host: "127.0.0.1:\(port)", path: path, subprotocols: subprotocols, origin: origin,
                                        extraHeaders: extraHeaders)
        var request = "GET \(path) HTTP/1.1\r\nHost: \(handshake.request.authority!)\r\n"
        for field in handshake.request.headerFields { request += "\(field.name): \(field.value)\r\n" }
        request += "\r\n"
        // The request goes out from the event loop as soon as the connection is up.
        let (channel, handler) = try await open(port: port, expectsUpgrade: true, autoPong: autoPong,
                                                autoCloseReply: autoCloseReply, tls: tls, group: group,
                                                receiveBuffer: receiveBuffer,
                                                firstBytes: ByteBuffer(string: request) + (early ?? ByteBuffer()))
        let client = TestClient(channel: channel, handler: handler, handshake: nil)
        let head = try await client.wait("the handshake response") { h -> HTTPAnswer? in
            if let head = h.responseHead { return head }
            if h.closed { throw TestClientError("connection closed before the handshake response") }
            return nil
        }
        guard head.status == 101 else {
            channel.close(promise: nil)
            throw TestClientError("handshake answered \(head.statusLine)")
        }
        do {
            _ = try handshake.validate(HTTPResponse(status: .init(code: head.status), headerFields: head.headers))
        } catch {
            channel.close(promise: nil)
            throw TestClientError("bad handshake response: \(error)")
        }
        return TestClient(channel: channel, handler: handler, handshake: head)
    }

    /// Waits (on the event loop, without polling) until `check` returns a value, at most `timeout`.
    func wait<T: Sendable>(_ what: String, timeout: TimeAmount = .seconds(10),
                           _ check: @escaping @Sendable (TestClientHandler) throws -> T?) async throws -> T {
        let handler = self.handler
        let loop = eventLoop
        return try await loop.flatSubmit { () -> EventLoopFuture<T> in
            let promise = loop.makePromise(of: T.self)
            let h = handler.value
            let attempt: () -> Bool = {
                do {
                    guard let value = try check(h) else { return false }
                    promise.succeed(value)
                } catch {
                    promise.fail(error)
                }
                return true
            }
            if let id = h.addWaiter(attempt) {
                let timer = loop.assumeIsolated().scheduleTask(in: timeout) {
                    if h.removeWaiter(id) { promise.fail(TestTimeout(what: what)) }
                }
                promise.futureResult.whenComplete { _ in timer.cancel() }
            }
            return promise.futureResult
        }.get()
    }

    // MARK: Sending

    func send(raw text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text)).get()
    }

    func send(raw bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes).get()
    }

    /// Sends one frame (masked unless told otherwise).
    func sendFrame(_ opcode: Opcode, _ payload: ByteBuffer, fin: Bool = true, masked: Bool = true,
                   reservedBits: ReservedBits = []) async throws {
        let handler = self.handler
        try await eventLoop.submit {
            handler.value.write(opcode, payload, fin: fin, masked: masked, reservedBits: reservedBits)
        }.get()
    }

    func sendText(_ text: String) async throws { try await sendFrame(.text, ByteBuffer(string: text)) }

    func sendBinary(_ bytes: [UInt8]) async throws { try await sendFrame(.binary, ByteBuffer(bytes: bytes)) }
    func sendPing(_ bytes: [UInt8]) async throws { try await sendFrame(.ping, ByteBuffer(bytes: bytes)) }

    func sendClose(code: UInt16?, reason: String = "") async throws {
        var payload = ByteBuffer()
        if let code {
            payload.writeInteger(code)
            payload.writeString(reason)
        }
        try await sendFrame(.close, payload)
    }

    // MARK: Receiving

    /// The next event of any kind.
    func next(timeout: TimeAmount = .seconds(10)) async throws -> WSEvent {
        try await wait("a WebSocket event", timeout: timeout) { h -> WSEvent? in
            if let error = h.protocolError { throw TestClientError("the server broke the protocol: \(error)") }
            if let event = h.events.popFirst() { return event }
            if h.closed { throw TestClientError("the connection closed (no event)") }
            return nil
        }
    }

    /// The next data message or close frame, skipping pings and pongs.
    func nextMessage(timeout: TimeAmount = .seconds(10)) async throws -> WSEvent {
        while true {
            let event = try await next(timeout: timeout)
            switch event {
            case .ping, .pong: continue
            default: return event
            }
        }
    }

    /// The server's close frame, skipping pings, pongs and (when `skippingData`) data messages.
    func nextClose(skippingData: Bool = false, timeout: TimeAmount = .seconds(10)) async throws -> (code: UInt16?, reason: String) {
        while true {
            switch try await next(timeout: timeout) {
            case .close(let code, let reason): return (code, reason)
            case .ping, .pong: continue
            case let other:
                if skippingData { continue }
                throw TestClientError("expected a close frame, got \(other)")
            }
        }
    }

    /// Waits until the server closed the TCP connection.
    func waitForTCPClose(timeout: TimeAmount = .seconds(10)) async throws {
        _ = try await wait("the TCP connection to close", timeout: timeout) { h in h.closed ? true : nil }
    }

    /// Reads one plain HTTP response (head and `Content-Length` body).
    func readResponse(timeout: TimeAmount = .seconds(10)) async throws -> HTTPAnswer {
        try await wait("an HTTP response", timeout: timeout) { h -> HTTPAnswer? in
            if let answer = TestClientHandler.parseHead(&h.raw, withBody: true) { return answer }
            if h.closed { throw TestClientError("the connection closed before a complete response") }
            return nil
        }
    }

    var isClosed: Bool {
        get async throws {
            let handler = self.handler
            return try await eventLoop.submit { handler.value.closed }.get()
        }
    }

    /// Stops (or resumes) reading from the socket, so the server's writes back up.
    func setReading(_ on: Bool) async throws {
        try await channel.setOption(.autoRead, value: on).get()
        if on { channel.read() }
    }

    func close() async {
        try? await channel.close().get()
    }
}

/// An HTTP request as raw text with `Host` and any other header lines.
func httpRequest(_ method: String = "GET", _ target: String, headers: [(String, String)] = [],
                 version: String = "HTTP/1.1") -> String {
    var text = "\(method) \(target) \(version)\r\nHost: 127.0.0.1\r\n"
    for (name, value) in headers { text += "\(name): \(value)\r\n" }
    return text + "\r\n"
}

/// The headers of a valid upgrade request, minus the names in `omitting`, plus `adding`.
func upgradeHeaders(omitting: Set<String> = [], key: String = "dGhlIHNhbXBsZSBub25jZQ==", version: String = "13",
                    adding: [(String, String)] = []) -> [(String, String)] {
    let all: [(String, String)] = [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version),
    ]
    return all.filter { !omitting.contains($0.0) } + adding
}

extension ByteBuffer {
    static func + (lhs: ByteBuffer, rhs: ByteBuffer) -> ByteBuffer {
        var sum = lhs
        var rhs = rhs
        sum.writeBuffer(&rhs)
        return sum
    }
}

/// Deterministic bytes for payloads: a pseudo-random block of up to 64 KiB, repeated (cheap to
/// make even for 16 MiB in a debug build, so big tests do not hog the test's threads).
func patternBytes(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
    let blockSize = min(count, 65_521)  // a prime, so that the repetition does not align with frames
    var block = [UInt8](repeating: 0, count: blockSize)
    var x = UInt32(seed) &+ 0x9E37_79B9
    for i in 0..<blockSize {
        x = x &* 1_664_525 &+ 1_013_904_223
        block[i] = UInt8(truncatingIfNeeded: x >> 24)
    }
    var out = [UInt8]()
    out.reserveCapacity(count)
    while out.count < count {
        out.append(contentsOf: block.prefix(count - out.count))
    }
    return out
}

/// Byte-wise equality with memcmp (Array's == is slow for megabytes in a debug build).
func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard !a.isEmpty else { return true }
    return a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } }
}

/// Runs a program to its end (at most `timeout`) without blocking a thread of the cooperative
/// pool; returns its exit status and its output (stdout and stderr together).
func runProcess(_ executable: String, _ arguments: [String], timeout: TimeAmount = .seconds(120)) async throws -> (status: Int32, output: String) {
    let outputURL = FileManager.default.temporaryDirectory.appendingPathComponent("duplex-proc-\(UUID().uuidString).txt")
    _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: outputURL) }
    let output = try FileHandle(forWritingTo: outputURL)
    defer { try? output.close() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = repositoryRoot
    process.standardOutput = output
    process.standardError = output
    let ended = Mailbox<Int32>()
    process.terminationHandler = { ended.put($0.terminationStatus) }
    try process.run()
    let status: Int32
    do {
        status = try await ended.take(timeout: timeout, "\(executable) to exit")
    } catch {
        process.terminate()
        throw error
    }
    let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
    return (status, text)
}

/// The repository's root (for scripts and Python clients).
let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

// MARK: - Header fields by name, as the tests read raw answers

extension HTTPFields {
    /// Appends a field named by text (a parsed header line).
    mutating func add(name: String, value: String) {
        append(HTTPField(name: HTTPField.Name(name)!, value: value))
    }

    /// The values of the fields named `name`, in order.
    func values(_ name: String) -> [String] { self[values: HTTPField.Name(name)!] }

    /// The first value of `name`.
    func first(_ name: String) -> String? { values(name).first }

    /// Whether a comma-separated `name` field holds `token` (case-insensitive).
    func containsToken(_ token: String, in name: String) -> Bool {
        values(name).flatMap { $0.split(separator: ",") }.contains {
            $0.trimmingCharacters(in: .whitespaces).lowercased() == token.lowercased()
        }
    }
}
