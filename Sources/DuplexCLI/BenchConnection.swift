import DuplexCore
import HTTPTypes
import NIOCore

/// What every connection of a run does.
struct BenchWorkload: Sendable {
    var host: String
    var port: Int
    var path: String
    var opcode: Opcode
    /// The message every connection sends (the same bytes each time; masking copies them).
    var payload: ByteBuffer
    /// Messages in flight per connection.
    var pipeline: Int
    /// Largest accepted echo frame.
    var maxFrameSize: Int

    var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port == 80 ? h : "\(h):\(port)"
    }
}

/// One load-generating WebSocket connection, straight on SwiftNIO and DuplexCore: it writes the
/// upgrade request by hand, checks the answer with `ClientHandshake`, then frames, masks and
/// parses with a client-role `Connection`. Once started it keeps `pipeline` messages in flight:
/// each echo records its round trip and sends the next message. Writes made while reading are
/// flushed once per read batch.
final class BenchConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case handshaking
        case open
        case closing
        case done
    }

    private let workload: BenchWorkload
    private let loop: BenchLoopState
    private let upgraded: EventLoopPromise<Void>
    private let handshake: ClientHandshake
    private var connection = Connection(role: .client)
    private var state = State.handshaking
    private var response: ByteBuffer?
    private var context: ChannelHandlerContext?
    private let closed: EventLoopPromise<Void>

    /// Send times of the messages in flight (a ring of `pipeline` slots).
    private var sendTimes: [UInt64]
    private var head = 0
    private var inFlight = 0
    private var sending = false
    private var inRead = false
    private var needsFlush = false

    init(workload: BenchWorkload, loop: BenchLoopState, upgraded: EventLoopPromise<Void>, eventLoop: any EventLoop) {
        self.workload = workload
        self.loop = loop
        self.upgraded = upgraded
        self.closed = eventLoop.makePromise(of: Void.self)
        self.handshake = ClientHandshake(host: workload.hostHeader)
        self.connection = Connection(
            role: .client,
            configuration: .init(limits: Limits(maxFrameSize: workload.maxFrameSize, maxMessageSize: workload.maxFrameSize))
        )
        self.sendTimes = [UInt64](repeating: 0, count: workload.pipeline)
    }

    // MARK: - Handshake

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        var request = "GET \(workload.path) HTTP/1.1\r\n"
        request += "Host: \(handshake.request.authority ?? "")\r\n"
        for field in handshake.request.headerFields { request += "\(field.name): \(field.value)\r\n" }
        request += "\r\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .handshaking:
            loop.errors.handshake += 1
            upgraded.fail(BenchError.handshake("connection closed during the handshake"))
        case .open:
            if loop.running { loop.errors.closedEarly += 1 }
        case .closing, .done:
            break
        }
        state = .done
        loop.handlers.removeValue(forKey: ObjectIdentifier(self))
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
        loop.handlers[ObjectIdentifier(self)] = self
        upgraded.succeed()
        if loop.running { startSending() }
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

    // MARK: - Round trips

    /// Puts `pipeline` messages in flight.
    func startSending() {
        guard state == .open, !sending, let context else { return }
        sending = true
        while inFlight < workload.pipeline { sendOne() }
        if !inRead { context.flush() } else { needsFlush = true }
    }

    @inline(__always)
    private func sendOne() {
        do {
            try connection.send(workload.opcode, payload: workload.payload)
        } catch {
            return
        }
        sendTimes[(head + inFlight) % sendTimes.count] = BenchClock.now()
        inFlight += 1
        writeOutbound(flush: false)
    }

    private func receive(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        inRead = true
        connection.receive(bytes)
        while let event = connection.nextEvent() {
            switch event {
            case .text(let message), .binary(let message):
                guard inFlight > 0 else { continue }
                let now = BenchClock.now()
                let sent = sendTimes[head]
                head = (head + 1) % sendTimes.count
                inFlight -= 1
                if message.readableBytes != workload.payload.readableBytes { loop.errors.mismatched += 1 }
                if loop.recording {
                    loop.messages &+= 1
                    loop.histogram.record(now &- sent)
                }
                if loop.running && state == .open {
                    sendOne()
                } else {
                    sending = false
                }
            case .ping, .pong:
                break
            case .close:
                if state == .open && loop.running { loop.errors.closedEarly += 1 }
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
        sending = false
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
