import Duplex
import DuplexCore
import HTTPTypes
import NIOCore
import NIOSSL

/// Where every connection of a run connects (a ws:// or wss:// URL), with TLS for wss://, and the
/// largest frame it accepts.
struct BenchEndpoint: Sendable {
    var host: String
    var port: Int
    var path: String
    var hostHeader: String
    var maxFrameSize: Int
    /// The TLS context of a wss:// endpoint; nil for ws://.
    var tls: NIOSSLContext?
    /// The name sent in SNI and checked against the certificate: the host, unless it is an IP literal.
    var serverName: String?

    init(_ url: WebSocketURL, maxFrameSize: Int, tls: NIOSSLContext? = nil) {
        host = url.host
        port = url.port
        path = url.requestTarget
        hostHeader = url.hostHeader
        self.maxFrameSize = maxFrameSize
        self.tls = url.isSecure ? tls : nil
        serverName = url.isIPAddress ? nil : url.host
    }
}

/// One load-generating WebSocket connection, straight on SwiftNIO and DuplexCore: it writes the
/// upgrade request of a `ClientHandshake` (`writeHTTP1Request(into:)`), checks the answer with
/// it, then frames, masks and parses with a client-role `Connection`. What it sends and what it does with what it receives
/// is its subclass's (``EchoConnection``, ``SubscriberConnection``, ``PublisherConnection``),
/// through ``opened()``, ``received(_:)`` and ``closedByServer(_:)``. Writes made while reading
/// are flushed once per read batch.
class BenchConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State {
        case handshaking
        case open
        case closing
        case done
    }

    let endpoint: BenchEndpoint
    let loop: BenchLoop
    private let upgraded: EventLoopPromise<Void>
    private let handshake: ClientHandshake
    private var connection: Connection
    private(set) var state = State.handshaking
    private var response: ByteBuffer?
    private(set) var context: ChannelHandlerContext?
    private let closed: EventLoopPromise<Void>
    private var inRead = false
    private var needsFlush = false

    init(endpoint: BenchEndpoint, loop: BenchLoop, upgraded: EventLoopPromise<Void>, eventLoop: any EventLoop) {
        self.endpoint = endpoint
        self.loop = loop
        self.upgraded = upgraded
        self.closed = eventLoop.makePromise(of: Void.self)
        self.handshake = ClientHandshake(host: endpoint.hostHeader, path: endpoint.path)
        self.connection = Connection(
            role: .client,
            configuration: .init(limits: Limits(maxFrameSize: endpoint.maxFrameSize, maxMessageSize: endpoint.maxFrameSize))
        )
    }

    // MARK: - What subclasses do

    /// The upgrade succeeded; the connection is registered with its loop.
    func opened() {}

    /// A text or binary message arrived.
    func received(_ message: ByteBuffer) {}

    /// The server ended an open connection unasked: the code of its close frame (1005 for one
    /// without a code), or 1006 when the TCP connection ended without one. By default an error
    /// while the run is going.
    func closedByServer(_ code: UInt16) {
        if loop.running { loop.errors.closedEarly += 1 }
    }

    // MARK: - Handshake

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        var request = context.channel.allocator.buffer(capacity: 256)
        handshake.writeHTTP1Request(into: &request)
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .handshaking:
            loop.errors.handshake += 1
            upgraded.fail(BenchError.handshake("connection closed during the handshake"))
        case .open:
            state = .done
            closedByServer(CloseCode.abnormalClosure.rawValue)
        case .closing, .done:
            break
        }
        state = .done
        loop.connections.removeValue(forKey: ObjectIdentifier(self))
        closed.succeed()
        self.context = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A channel that never became active (connect failed) ends here.
        upgraded.fail(BenchError.handshake("no connection"))
        closed.succeed()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        switch state {
        case .handshaking:
            if response == nil { response = bytes } else { response!.writeBuffer(&bytes) }
            readResponse(context: context)
        case .open, .closing:
            receive(bytes, context: context)
        case .done:
            break
        }
    }

    private func readResponse(context: ChannelHandlerContext) {
        guard var buffer = response else { return }
        let view = buffer.readableBytesView
        guard let end = Self.headerEnd(view) else {
            if buffer.readableBytes > 16 << 10 { failHandshake("response header over 16 KiB", context: context) }
            return
        }
        let headerLength = end - view.startIndex
        let text = buffer.readString(length: headerLength)!
        response = nil
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: true).makeIterator()
        let statusLine = lines.next() ?? ""
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...999).contains(status) else {
            failHandshake("bad status line \(statusLine)", context: context)
            return
        }
        var headers = HTTPFields()
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: ":"), let name = HTTPField.Name(String(line[..<colon])) else { continue }
            headers.append(HTTPField(name: name, value: String(line[line.index(after: colon)...].trimmingHTTPWhitespace())))
        }
        do {
            let result = try handshake.validate(HTTPResponse(status: .init(code: status), headerFields: headers))
            connection = Connection(
                role: .client,
                configuration: connection.configuration,
                extensions: result.extensions
            )
        } catch {
            failHandshake("\(error)", context: context)
            return
        }
        state = .open
        loop.connections[ObjectIdentifier(self)] = self
        upgraded.succeed()
        opened()
        if buffer.readableBytes > 0 { receive(buffer, context: context) }
    }

    /// The index just past the blank line that ends the header block.
    private static func headerEnd(_ view: ByteBufferView) -> Int? {
        var i = view.startIndex
        let end = view.endIndex
        while i + 3 < end {
            if view[i] == 13 && view[i + 1] == 10 && view[i + 2] == 13 && view[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }

    private func failHandshake(_ reason: String, context: ChannelHandlerContext) {
        loop.errors.handshake += 1
        state = .done
        upgraded.fail(BenchError.handshake(reason))
        context.close(promise: nil)
    }

    // MARK: - Messages

    /// Frames and masks one message and queues it; it goes out at the end of the current read
    /// batch, or at the next ``flush()``. False if the connection no longer sends.
    @inline(__always)
    @discardableResult
    final func send(_ opcode: Opcode, _ payload: ByteBuffer) -> Bool {
        guard state == .open else { return false }
        do {
            try connection.send(opcode, payload: payload)
        } catch {
            return false
        }
        writeOutbound(flush: false)
        return true
    }

    /// Flushes what ``send(_:_:)`` queued (at the end of the read batch when called while reading).
    final func flush() {
        if inRead { needsFlush = true } else { writeOutbound(flush: true) }
    }

    private func receive(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        inRead = true
        connection.receive(bytes)
        while let event = connection.nextEvent() {
            switch event {
            case .text(let message), .binary(let message):
                received(message)
            case .ping, .pong:
                break
            case .close(let frame):
                if state == .open {
                    state = .closing
                    closedByServer(frame.code?.rawValue ?? CloseCode.noStatusReceived.rawValue)
                }
                state = .closing
            case .failed:
                loop.errors.protocolErrors += 1
                state = .closing
            }
        }
        inRead = false
        writeOutbound(flush: true)
        if connection.shouldCloseTransport { context.close(promise: nil) }
    }

    @inline(__always)
    private func writeOutbound(flush: Bool) {
        guard let context else { return }
        if let bytes = connection.takeOutbound() {
            context.write(wrapOutboundOut(bytes), promise: nil)
            needsFlush = true
        }
        if flush && needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    // MARK: - Closing

    /// Sends a close frame (1000); the server answers and closes the TCP connection.
    func close() -> EventLoopFuture<Void> {
        if state == .open {
            state = .closing
            try? connection.close(code: .normalClosure)
            writeOutbound(flush: true)
        }
        return closed.futureResult
    }

    func forceClose() {
        context?.close(promise: nil)
    }
}

/// What every echo connection of a run does.
struct EchoWorkload: Sendable {
    var opcode: Opcode
    /// The message every connection sends (the same bytes each time; masking copies them).
    var payload: ByteBuffer
    /// Messages in flight per connection.
    var pipeline: Int
}

/// `duplex bench echo`'s connection: once started it keeps `pipeline` messages in flight; each
/// echo records its round trip and sends the next message.
final class EchoConnection: BenchConnection {
    private let workload: EchoWorkload
    private let echo: EchoLoop
    /// Send times of the messages in flight (a ring of `pipeline` slots).
    private var sendTimes: [UInt64]
    private var head = 0
    private var inFlight = 0
    private var sending = false

    init(endpoint: BenchEndpoint, workload: EchoWorkload, loop: EchoLoop, upgraded: EventLoopPromise<Void>,
         eventLoop: any EventLoop) {
        self.workload = workload
        self.echo = loop
        self.sendTimes = [UInt64](repeating: 0, count: workload.pipeline)
        super.init(endpoint: endpoint, loop: loop, upgraded: upgraded, eventLoop: eventLoop)
    }

    override func opened() {
        if loop.running { startSending() }
    }

    /// Puts `pipeline` messages in flight.
    func startSending() {
        guard state == .open, !sending else { return }
        sending = true
        while inFlight < workload.pipeline, sendOne() {}
        flush()
    }

    @inline(__always)
    private func sendOne() -> Bool {
        guard send(workload.opcode, workload.payload) else { return false }
        sendTimes[(head + inFlight) % sendTimes.count] = BenchClock.now()
        inFlight += 1
        return true
    }

    override func received(_ message: ByteBuffer) {
        guard inFlight > 0 else { return }
        let now = BenchClock.now()
        let sent = sendTimes[head]
        head = (head + 1) % sendTimes.count
        inFlight -= 1
        if message.readableBytes != workload.payload.readableBytes { loop.errors.mismatched += 1 }
        if echo.recording {
            echo.messages &+= 1
            echo.histogram.record(now &- sent)
        }
        if !(loop.running && sendOne()) { sending = false }
    }

    override func close() -> EventLoopFuture<Void> {
        sending = false
        return super.close()
    }
}

enum BenchError: Error, CustomStringConvertible {
    case handshake(String)
    case usage(String)

    var description: String {
        switch self {
        case .handshake(let reason): "handshake failed: \(reason)"
        case .usage(let reason): reason
        }
    }
}

extension Substring {
    fileprivate func trimmingHTTPWhitespace() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}
