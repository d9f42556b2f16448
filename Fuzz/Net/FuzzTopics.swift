// The server's topics (publish/subscribe) against a model: a TopicRegistry and 1-8 server
// connections (ConnectionDriver and ChannelConnectionHandler as a server runs them, on
// EmbeddedChannels of one EmbeddedEventLoop), driven by a program read from the input through
// the public API (EventLoopWebSocket's subscribe, unsubscribe, topics, publish and send) and
// the registry's publish and counts (what WebSocketServer.publish, subscriberCount and topics
// call).
//
// Each channel has a socket emulator at its head: a peer that reads (flushes go through, the
// bytes are read back with readOutbound) or one that stopped reading (flushes are held, so the
// bytes stay in the channel's buffer, as a socket's kernel buffer that is full leaves them in
// NIO's), and NIO's writability: unwritable once a write takes the buffered bytes over the
// high-water mark, writable again when a flush takes them under the low one.
//
// Input: byte 0 the configuration: bits 0-1 the high-water mark (64, 512, 4096 or 4096 bytes;
// the low one is half of it), bits 2-3 the hard limit (the high mark plus 0, 100, 1000 or 70,000
// bytes), bits 4-5 the backpressure policy (close 1013, close 1008, drop, drop), bits 6-7 the
// fragment size (none, none, 40 or 1000 bytes); byte 1: the number of connections, 1 + (b & 7).
// Then operations of two bytes [op, arg] (publish and send take a third, the size), with
// c = arg & 7 (modulo the number of connections), t = (arg >> 3) & 3 a topic, and arg's bit 5
// text (0) or binary (1), bit 6 "in the same turn of the loop" (the loop does not run after it):
//   op % 12 = 0 subscribe(c, t)         1 unsubscribe(c, t)
//             2 the server publishes to t [size]   3 c publishes to t (not to itself) [size]
//             4 read c's outbound bytes   5 c's peer stops reading   6 c's peer reads again
//             7 c's transport says unwritable (until its peer reads again)
//             8 c's transport closes abruptly   9 c's peer sends a close frame (arg bit 5: 1001)
//            10 time passes (the close timeout and a second)   11 c sends a message [size]
//   size byte s: s & 63 for s >> 6 = 0; 100 + 16 (s & 63); 120 + 64 (s & 63); 65,500 + 2 (s & 63);
//   past 16 MiB of payload written to connections in one input, s & 63 (memory and time stay bounded).
// After every operation but those in the same turn the loop runs (its flushes).
//
// The model (what the documentation says: Topics/WebSocketServer+Topics.swift, the README's
// Topics section, WebSocketConfiguration.outboundHardLimit and BackpressurePolicy):
// - a subscriber gets exactly the messages published to its topics after it subscribed and
//   before it unsubscribed or closed, in publish order, each once, as one unmasked frame (or the
//   configured fragments) of the published opcode and bytes, except those the policy drops; a
//   connection's publish skips itself; nothing after a close frame, nothing to a closing or
//   closed connection;
// - a message (published or sent) whose frames would take the connection's buffered outbound
//   bytes over the hard limit is not written (an empty buffer takes any message of up to the
//   limit's payload bytes) and meets the policy: with .close(code) the connection starts the
//   closing handshake with that code and "peer reads too slowly", with .drop it stays open; the
//   buffer never holds more than the hard limit but for such a message alone and the one close
//   frame; a send answers .sent, .buffered (over the high-water mark) or .dropped as the model;
// - subscribe answers false when already subscribed and throws once the connection is closing;
//   unsubscribe answers whether it was subscribed; a connection's topics, the registry's counts
//   (closing connections count until their transport closes), every publish's answer and the
//   0 → 1 / 1 → 0 transitions reported to the observer are the model's;
// - the transport closes exactly when the model says: at once when closed abruptly, once the
//   close echo is written after the peer's close frame, after the close timeout for a closing
//   connection whose peer does not answer; onClose is called once, when it closes;
// - the channel's buffered bytes and writability are the model's after every operation.
// At the end every peer reads again, everything left is read and checked, every connection is
// closed and every count is zero.
@testable import Duplex
import DuplexCore
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOEmbedded

/// One loop for the whole run: the loop flusher and the timer wheel are kept per event loop.
let loop = EmbeddedEventLoop()
let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
let topicNames = ["news", "room.1", "", "prices"]
let closeTimeout = TimeAmount.seconds(5)
let policyReason = "peer reads too slowly"
/// The bytes messages are cut from: printable ASCII for text (valid UTF-8), any byte for binary.
let textPattern: [UInt8] = (0..<(70_000)).map { UInt8(32 + $0 % 95) }
let binaryPattern: [UInt8] = (0..<(70_000)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }
/// FUZZ_TRACE=1: print each operation and what the model expects.
let trace = getenv("FUZZ_TRACE") != nil

/// The head of a connection's pipeline: the socket and its peer (see the header comment).
final class SocketEmulator: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    unowned let channel: EmbeddedChannel
    let low: Int
    let high: Int
    var stalled = false
    var forcedUnwritable = false
    var overHigh = false
    var context: ChannelHandlerContext?
    /// The promises of the writes not yet flushed through.
    private var promises: [EventLoopPromise<Void>] = []

    init(channel: EmbeddedChannel, low: Int, high: Int) {
        self.channel = channel
        self.low = low
        self.high = high
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    var buffered: Int { (try? channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0 }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The promises are the emulator's to keep (EmbeddedChannel keeps those of unflushed
        // writes when it closes; a socket fails them).
        context.write(data, promise: nil)
        if let promise { promises.append(promise) }
        if !overHigh && buffered > high { overHigh = true }
        updateWritability(context)
    }

    func flush(context: ChannelHandlerContext) {
        guard !stalled else { return }
        context.flush()
        afterFlush(context)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        let failed = promises
        promises = []
        for promise in failed { promise.fail(ChannelError.ioOnClosedChannel) }
        context.close(mode: mode, promise: promise)
    }

    private func afterFlush(_ context: ChannelHandlerContext) {
        let written = promises
        promises = []
        for promise in written { promise.succeed() }
        if overHigh && buffered < low { overHigh = false }
        updateWritability(context)
    }

    func updateWritability(_ context: ChannelHandlerContext) {
        let writable = !overHigh && !forcedUnwritable
        guard channel.isWritable != writable else { return }
        channel.isWritable = writable
        context.fireChannelWritabilityChanged()
    }

    /// The peer reads again: everything buffered goes out.
    func resume() {
        stalled = false
        forcedUnwritable = false
        guard let context, channel.isActive else { return }
        context.flush()
        afterFlush(context)
    }

    func forceUnwritable() {
        forcedUnwritable = true
        if let context { updateWritability(context) }
    }
}

/// What a connection's callbacks saw (the run is on one thread, the loop's).
final class Seen: @unchecked Sendable {
    var socket: EventLoopWebSocket?
    var closes: [CloseFrame] = []
    var transitions: [TopicTransition] = []
}

/// An item the model expects on a connection's wire.
enum Expected: Equatable, CustomStringConvertible {
    case message(Opcode, ByteBuffer)
    case close(code: UInt16?, reason: String?)  // reason nil: the echo of the peer's close (code only)

    var description: String {
        switch self {
        case .message(let opcode, let payload): return "\(opcode) of \(payload.readableBytes) bytes"
        case .close(let code, let reason): return "close \(code.map(String.init) ?? "empty") \(reason ?? "")"
        }
    }
}

/// The size of a frame header for a payload of `n` bytes (server frames: unmasked).
func headerSize(_ n: Int) -> Int { n < 126 ? 2 : n <= 0xFFFF ? 4 : 10 }

/// The bytes a data message of `n` payload bytes takes on the wire with this fragment size.
func wireSize(_ n: Int, fragmentSize: Int?) -> Int {
    guard let size = fragmentSize, n > size else { return headerSize(n) + n }
    var total = 0
    var left = n
    while left > 0 {
        let chunk = min(size, left)
        total += headerSize(chunk) + chunk
        left -= chunk
    }
    return total
}

struct ModelConnection {
    enum State: Equatable {
        case open
        /// This side sent its close frame and waits for the peer's (or the close timeout).
        case closing
        /// The close is complete: the transport closes once the last bytes are written.
        case closesWhenWritten
        case closed
    }

    var state = State.open
    var topics: Set<Int> = []
    /// Written, not flushed through (what the channel buffers), and its size.
    var pending: [Expected] = []
    var pendingBytes = 0
    /// The size of the close frame in `pending` (the one thing allowed over the hard limit).
    var pendingCloseBytes = 0
    /// Flushed, not yet read.
    var flushed: [Expected] = []
    var stalled = false
    var forcedUnwritable = false
    var overHigh = false
    var writable: Bool { !overHigh && !forcedUnwritable }
}

/// One connection as the harness holds it.
struct Peer {
    let channel: EmbeddedChannel
    let emulator: SocketEmulator
    let seen: Seen
    var parser = FrameParser(role: .client, maxFrameSize: Int.max)
    /// A fragmented message being reassembled from the wire.
    var fragments: (Opcode, ByteBuffer)?
    var sawClose = false

    var socket: EventLoopWebSocket {
        guard let socket = seen.socket else { fuzzFail("onOpen was not called") }
        return socket
    }
}

struct Run {
    let high: Int
    let low: Int
    let hardLimit: Int
    let policy: WebSocketConfiguration.BackpressurePolicy
    let fragmentSize: Int?
    let registry = TopicRegistry()
    let observed = Seen()
    var peers: [Peer] = []
    var model: [ModelConnection] = []
    var expectedTransitions: [TopicTransition] = []
    /// How many transitions the checks compared so far.
    var checkedTransitions = 0
    var serial = 0
    /// Payload bytes handed to connections so far (see ``messageSize(_:)``).
    var written = 0

    init(config: UInt8) {
        high = [64, 512, 4096, 4096][Int(config & 3)]
        low = high / 2
        hardLimit = high + [0, 100, 1000, 70_000][Int((config >> 2) & 3)]
        policy = [.close(.tryAgainLater), .close(.policyViolation), .drop, .drop][Int((config >> 4) & 3)]
        fragmentSize = [nil, nil, 40, 1000][Int(config >> 6)]
        let observed = observed
        registry.setObserver { observed.transitions.append($0) }
    }

    mutating func open(count: Int) throws {
        let configuration = WebSocketConfiguration(
            pingInterval: nil, closeTimeout: closeTimeout, outboundHighWaterMark: high, outboundLowWaterMark: low,
            outboundHardLimit: hardLimit, backpressurePolicy: policy, fragmentSize: fragmentSize)
        let settings = ConnectionSettings(role: .server, configuration: configuration, metrics: WebSocketMetrics(role: .server),
                                          logger: logger, topics: registry)
        for index in 0..<count {
            let channel = EmbeddedChannel(loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000 + index)).wait()
            let seen = Seen()
            let callbacks = WebSocketCallbacks(
                onOpen: { ws in seen.socket = ws },
                onMessage: { _, _ in fuzzFail("a message from a peer that sends none") },
                onClose: { _, frame in seen.closes.append(frame) })
            let driver = ConnectionDriver(connection: Connection(role: .server, configuration: settings.coreConfiguration),
                                          settings: settings, info: ConnectionInfo(connectionID: UInt64(index)),
                                          application: .callbacks(callbacks), eventLoop: loop)
            let emulator = SocketEmulator(channel: channel, low: low, high: high)
            try channel.pipeline.syncOperations.addHandler(emulator)
            try channel.pipeline.syncOperations.addHandler(ChannelConnectionHandler(driver: driver))
            peers.append(Peer(channel: channel, emulator: emulator, seen: seen))
            model.append(ModelConnection())
            _ = peers[index].socket
        }
        loop.run()
    }

    // MARK: - The model's moves

    func count(of topic: Int) -> Int { model.filter { $0.topics.contains(topic) }.count }

    mutating func addTopic(_ topic: Int, to c: Int) {
        if count(of: topic) == 0 { expectedTransitions.append(.firstSubscriber(topic: topicNames[topic])) }
        model[c].topics.insert(topic)
    }

    mutating func removeTopic(_ topic: Int, from c: Int) {
        model[c].topics.remove(topic)
        if count(of: topic) == 0 { expectedTransitions.append(.lastSubscriberLeft(topic: topicNames[topic])) }
    }

    mutating func write(_ item: Expected, bytes: Int, to c: Int) {
        model[c].pending.append(item)
        model[c].pendingBytes += bytes
        if model[c].pendingBytes > high { model[c].overHigh = true }
    }

    /// A message for `c` of `n` payload bytes, through the hard limit and the policy (as the
    /// documentation has it: the frames it would add to the buffer). Returns whether it was written.
    mutating func offer(_ message: Expected, size n: Int, to c: Int) -> Bool {
        guard model[c].state == .open else { return false }
        let bytes = wireSize(n, fragmentSize: fragmentSize)
        // An empty buffer takes any message of up to the limit's payload bytes.
        let fits = model[c].pendingBytes == 0 ? n <= hardLimit : model[c].pendingBytes + bytes <= hardLimit
        if !fits {
            if case .close(let code) = policy {
                let frameBytes = headerSize(2 + policyReason.utf8.count) + 2 + policyReason.utf8.count
                write(.close(code: code.rawValue, reason: policyReason), bytes: frameBytes, to: c)
                model[c].pendingCloseBytes = frameBytes
                model[c].state = .closing
            }
            return false
        }
        write(message, bytes: bytes, to: c)
        written += n
        return true
    }

    mutating func closeModel(_ c: Int) {
        for topic in model[c].topics.sorted() { removeTopic(topic, from: c) }
        model[c].state = .closed
        model[c].pending = []
        model[c].pendingBytes = 0
        model[c].pendingCloseBytes = 0
    }

    /// The loop ran: every peer that reads takes what was written.
    mutating func flushModel() {
        for c in model.indices where model[c].state != .closed && !model[c].stalled {
            model[c].flushed += model[c].pending
            model[c].pending = []
            model[c].pendingBytes = 0
            model[c].pendingCloseBytes = 0
            if model[c].overHigh && 0 < low { model[c].overHigh = false }
            if model[c].state == .closesWhenWritten { closeModel(c) }
        }
    }

    // MARK: - Operations

    /// A message's bytes: a slice of a pattern, at an offset of its serial number.
    func payload(size: Int, binary: Bool, serial: Int) -> ByteBuffer {
        let offset = serial % 256
        return ByteBuffer(bytes: (binary ? binaryPattern : textPattern)[offset..<(offset + size)])
    }

    mutating func publish(topic: Int, from sender: Int?, size: Int, binary: Bool) {
        serial += 1
        let bytes = payload(size: size, binary: binary, serial: serial)
        let data = WebSocketData(isText: !binary, bytes: bytes)
        let subscribers = model.indices.filter { model[$0].topics.contains(topic) }
        let answer: Int
        if let sender {
            do {
                answer = try peers[sender].socket.publish(data, to: topicNames[topic])
            } catch {
                fuzzFail("a server connection's publish threw \(error)")
            }
            let expected = subscribers.count - (model[sender].topics.contains(topic) ? 1 : 0)
            fuzzCheck(answer == expected, "publish from \(sender) to \(topic) answered \(answer), the model \(expected)")
        } else {
            answer = registry.publish(SharedFrame(opcode: binary ? .binary : .text, payload: bytes), to: topicNames[topic])
            fuzzCheck(answer == subscribers.count, "publish to \(topic) answered \(answer), the model \(subscribers.count)")
        }
        for c in subscribers where c != sender {
            _ = offer(.message(binary ? .binary : .text, bytes), size: size, to: c)
        }
    }

    mutating func send(from c: Int, size: Int, binary: Bool) {
        serial += 1
        let bytes = payload(size: size, binary: binary, serial: serial)
        let result = peers[c].socket.send(WebSocketData(isText: !binary, bytes: bytes))
        let expected: SendResult
        if offer(.message(binary ? .binary : .text, bytes), size: size, to: c) {
            expected = model[c].writable ? .sent : .buffered
        } else {
            expected = .dropped
        }
        fuzzCheck(result == expected, "send of \(size) bytes on \(c) answered \(result), the model \(expected) (state \(model[c].state), \(model[c].pendingBytes) buffered)")
    }

    mutating func subscribe(_ c: Int, _ topic: Int) {
        let answer: Bool?
        do {
            answer = try peers[c].socket.subscribe(to: topicNames[topic])
        } catch WebSocketError.closed {
            answer = nil
        } catch {
            fuzzFail("subscribe threw \(error)")
        }
        let expected: Bool? = model[c].state == .open ? !model[c].topics.contains(topic) : nil
        fuzzCheck(answer == expected, "subscribe(\(c), \(topic)) answered \(String(describing: answer)), the model \(String(describing: expected)) (\(model[c].state))")
        if expected == true { addTopic(topic, to: c) }
    }

    mutating func unsubscribe(_ c: Int, _ topic: Int) {
        let answer = peers[c].socket.unsubscribe(from: topicNames[topic])
        let expected = model[c].topics.contains(topic)
        fuzzCheck(answer == expected, "unsubscribe(\(c), \(topic)) answered \(answer), the model \(expected)")
        if expected { removeTopic(topic, from: c) }
    }

    mutating func peerCloses(_ c: Int, code: UInt16) throws {
        guard peers[c].channel.isActive else { return }
        var payload = ByteBuffer()
        payload.writeInteger(code)
        var frame = ByteBuffer()
        FrameWriter.write(fin: true, opcode: .close, maskKey: MaskKey(0x12, 0x34, 0x56, 0x78), payload: payload, to: &frame)
        try peers[c].channel.writeInbound(frame)
        switch model[c].state {
        case .open:
            write(.close(code: code, reason: nil), bytes: 4, to: c)
            model[c].pendingCloseBytes = 4
            model[c].state = .closesWhenWritten
        case .closing:
            model[c].state = .closesWhenWritten
        case .closesWhenWritten, .closed:
            break
        }
    }

    mutating func closeAbruptly(_ c: Int) {
        guard peers[c].channel.isActive else { return }
        peers[c].channel.close(promise: nil)
        closeModel(c)
    }

    mutating func resume(_ c: Int) {
        peers[c].emulator.resume()
        model[c].stalled = false
        model[c].forcedUnwritable = false
    }

    mutating func stall(_ c: Int) {
        peers[c].emulator.stalled = true
        model[c].stalled = true
    }

    mutating func forceUnwritable(_ c: Int) {
        peers[c].emulator.forceUnwritable()
        if model[c].state != .closed { model[c].forcedUnwritable = true }
    }

    mutating func timePasses() {
        loop.advanceTime(by: closeTimeout + .seconds(1))
        flushModel()
        for c in model.indices where model[c].state == .closing || model[c].state == .closesWhenWritten {
            closeModel(c)
        }
    }

    // MARK: - Checks

    /// Reads what `c`'s peer got and compares it with the model.
    mutating func read(_ c: Int) {
        var received: [Expected] = []
        do {
            while let buffer = try peers[c].channel.readOutbound(as: ByteBuffer.self) {
                peers[c].parser.append(buffer)
            }
            while let frame = try peers[c].parser.nextFrame() {
                fuzzCheck(!peers[c].sawClose, "a frame after the close frame on \(c)")
                fuzzCheck(frame.maskKey == nil && frame.reservedBits.isEmpty, "a masked frame or RSV bits from the server")
                switch frame.opcode {
                case .text, .binary:
                    fuzzCheck(peers[c].fragments == nil, "a new message inside a fragmented one on \(c)")
                    if frame.fin {
                        received.append(.message(frame.opcode, frame.payload))
                    } else {
                        fuzzCheck(fragmentSize != nil && frame.payload.readableBytes == fragmentSize, "a fragment of \(frame.payload.readableBytes) bytes, the fragment size \(String(describing: fragmentSize))")
                        peers[c].fragments = (frame.opcode, frame.payload)
                    }
                case .continuation:
                    guard let (opcode, started) = peers[c].fragments else { fuzzFail("a continuation frame outside a message on \(c)") }
                    var assembled = started
                    var chunk = frame.payload
                    fuzzCheck(chunk.readableBytes <= fragmentSize! && (frame.fin || chunk.readableBytes == fragmentSize!), "a continuation of \(chunk.readableBytes) bytes")
                    assembled.writeBuffer(&chunk)
                    if frame.fin {
                        received.append(.message(opcode, assembled))
                        peers[c].fragments = nil
                    } else {
                        peers[c].fragments = (opcode, assembled)
                    }
                case .close:
                    fuzzCheck(peers[c].fragments == nil, "a close frame inside a fragmented message on \(c)")
                    peers[c].sawClose = true
                    let close = try Connection.parseClosePayload(frame.payload)
                    received.append(.close(code: close.code?.rawValue, reason: close.reason))
                default:
                    fuzzFail("a \(frame.opcode) frame from the server on \(c)")
                }
            }
        } catch {
            fuzzFail("\(c)'s outbound bytes do not parse: \(error)")
        }
        fuzzCheck(peers[c].parser.bufferedBytes == 0 && peers[c].fragments == nil, "part of a frame or message left on \(c) after a flush")
        let expected = model[c].flushed
        model[c].flushed = []
        // The echo of the peer's close has the peer's code and no reason.
        let matches = received.count == expected.count && zip(received, expected).allSatisfy { got, want in
            if case .close(let code, nil) = want { return got == .close(code: code, reason: "") }
            return got == want
        }
        if !matches {
            fuzzFail("connection \(c) received \(received), the model \(expected)")
        }
    }

    mutating func check(after op: String) {
        for c in peers.indices {
            let m = model[c]
            let peer = peers[c]
            fuzzCheck(peer.channel.isActive == (m.state != .closed), "after \(op): connection \(c) is \(peer.channel.isActive ? "open" : "closed"), the model \(m.state)")
            fuzzCheck(peer.seen.closes.count == (m.state == .closed ? 1 : 0), "after \(op): onClose called \(peer.seen.closes.count) times on \(c) (\(m.state))")
            let topics = peer.socket.topics
            fuzzCheck(topics == Set(m.topics.map { topicNames[$0] }), "after \(op): connection \(c) has topics \(topics), the model \(m.topics.sorted())")
            guard m.state != .closed else { continue }
            let buffered = peer.emulator.buffered
            fuzzCheck(buffered == m.pendingBytes, "after \(op): connection \(c) buffers \(buffered) bytes, the model \(m.pendingBytes)")
            // Over the limit: only a message of up to the limit's payload taken by an empty buffer,
            // and the policy's close frame.
            let alone: Bool
            if case .message(_, let payload) = m.pending.first, m.pending.count - (m.pendingCloseBytes > 0 ? 1 : 0) == 1 {
                alone = payload.readableBytes <= hardLimit
            } else {
                alone = false
            }
            fuzzCheck(buffered - m.pendingCloseBytes <= hardLimit || alone,
                      "after \(op): connection \(c) buffers \(buffered) bytes (\(m.pendingCloseBytes) of a close frame), over the hard limit \(hardLimit)")
            fuzzCheck(peer.channel.isWritable == m.writable, "after \(op): connection \(c) writable \(peer.channel.isWritable), the model \(m.writable)")
        }
        var counts: [String: Int] = [:]
        for topic in topicNames.indices {
            let n = count(of: topic)
            fuzzCheck(registry.subscriberCount(of: topicNames[topic]) == n, "after \(op): \(registry.subscriberCount(of: topicNames[topic])) subscribers of \(topic), the model \(n)")
            if n > 0 { counts[topicNames[topic]] = n }
        }
        fuzzCheck(registry.counts == counts, "after \(op): the registry's counts \(registry.counts), the model \(counts)")
        // An operation makes at most one transition, but for closes: a connection leaves its topics
        // in no documented order, so the transitions of one operation are compared as a multiset.
        let seen = observed.transitions[checkedTransitions...]
        let expected = expectedTransitions[checkedTransitions...]
        fuzzCheck(seen.count == expected.count && Dictionary(seen.map { ($0, 1) }, uniquingKeysWith: +) == Dictionary(expected.map { ($0, 1) }, uniquingKeysWith: +),
                  "after \(op): transitions \(Array(seen)), the model \(Array(expected))")
        checkedTransitions = expectedTransitions.count
    }
}

/// A line on standard error, unbuffered (a failing run aborts).
func note(_ text: String) {
    let line = text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

/// The size chosen by a size byte (see the header comment).
func messageSize(_ s: UInt8) -> Int {
    let low = Int(s & 63)
    switch s >> 6 {
    case 0: return low
    case 1: return 100 + 16 * low
    case 2: return 120 + 64 * low
    default: return 65_500 + 2 * low
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 2 else { return 0 }
    var run = Run(config: input[0])
    let n = 1 + Int(input[1] & 7)
    do {
        try run.open(count: n)
        run.check(after: "opening")
        var at = 2
        // 512 operations at most: an input's run stays well under a second.
        var operations = 0
        while at + 1 < input.count, operations < 512 {
            operations += 1
            let op = input[at] % 12
            let arg = input[at + 1]
            at += 2
            let c = Int(arg & 7) % n
            let topic = Int((arg >> 3) & 3)
            let binary = arg & 0x20 != 0
            var sameTurn = false
            var size = 0
            if op == 2 || op == 3 || op == 11 {
                guard at < input.count else { break }
                size = run.written < 16 << 20 ? messageSize(input[at]) : Int(input[at] & 63)
                at += 1
                sameTurn = arg & 0x40 != 0
            }
            let name: String
            switch op {
            case 0: name = "subscribe(\(c), \(topic))"; run.subscribe(c, topic)
            case 1: name = "unsubscribe(\(c), \(topic))"; run.unsubscribe(c, topic)
            case 2: name = "publish(\(topic), \(size))"; run.publish(topic: topic, from: nil, size: size, binary: binary)
            case 3: name = "publish(\(topic), \(size), from: \(c))"; run.publish(topic: topic, from: c, size: size, binary: binary)
            case 4: name = "read(\(c))"; run.read(c)
            case 5: name = "stall(\(c))"; run.stall(c)
            case 6: name = "resume(\(c))"; run.resume(c)
            case 7: name = "unwritable(\(c))"; run.forceUnwritable(c)
            case 8: name = "close(\(c))"; run.closeAbruptly(c)
            case 9: name = "peerClose(\(c))"; try run.peerCloses(c, code: binary ? 1001 : 1000)
            case 10: name = "time passes"; run.timePasses()
            default: name = "send(\(c), \(size))"; run.send(from: c, size: size, binary: binary)
            }
            if !sameTurn {
                loop.run()
                run.flushModel()
            }
            if trace { note("\(name): \(run.model.map { "\($0.state) \($0.pendingBytes)" })") }
            run.check(after: name)
        }
        // The end: every peer reads again and reads everything; every connection closes.
        for c in 0..<n { run.resume(c) }
        loop.run()
        run.flushModel()
        run.check(after: "the end's resume")
        for c in 0..<n {
            run.read(c)
            run.closeAbruptly(c)
        }
        loop.run()
        run.check(after: "the end")
        fuzzCheck(run.registry.counts.isEmpty, "topics left after every connection closed: \(run.registry.counts)")
        for peer in run.peers {
            _ = try? peer.channel.finish(acceptAlreadyClosed: true)
            peer.seen.socket = nil  // (the handle holds the driver, whose callbacks hold `seen`)
        }
        loop.run()
    } catch {
        fuzzFail("the pipeline failed: \(error)")
    }
    return 0
}
