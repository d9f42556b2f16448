import DuplexCore
import NIOCore
import NIOEmbedded
import NIOWebSocket

/// Parsing a stream of small client-to-server frames (masked 16-byte text frames, each with
/// its own key), as a server receives them, into unmasked payloads:
/// - DuplexCore `Connection` (server role): `receive` then `nextEvent` until nil; this also
///   validates each text message as UTF-8, which NIO's decoder does not do;
/// - DuplexCore `FrameParser` alone: `append` then `nextFrame` until nil;
/// - NIOWebSocket: `WebSocketFrameDecoder` in a `ByteToMessageHandler` in an `EmbeddedChannel`,
///   followed by a handler that takes each frame's `unmaskedData` (as a NIOWebSocket server's
///   handler would).
/// The input is delivered in one read, or in 64 KiB reads (frames straddle the reads). The
/// caller keeps its reference to the read buffers, as NIO's channel does while it fires
/// `channelRead`: DuplexCore's in-place unmasking then copies each read once (copy-on-write),
/// while NIO's `unmaskedData` copies each payload.
func runFrameParsingBenchmarks(_ harness: Harness) {
    let payloadSize = 16
    let (stream, frameCount) = TestData.maskedTextFrames(totalBytes: 1 << 20, payloadSize: payloadSize)
    let readSizes: [(String, Int)] = [("1 MiB, one read", stream.readableBytes), ("1 MiB, 64 KiB reads", 64 * 1024)]

    for (label, readSize) in readSizes {
        let reads: [ByteBuffer] = stride(from: 0, to: stream.readableBytes, by: readSize).map {
            stream.getSlice(at: $0, length: min(readSize, stream.readableBytes - $0))!
        }

        // One long-lived connection, parser or channel per sample, fed the same reads n times.
        // They are local variables, not captured ones, so that no dynamic exclusivity checks
        // land in the loops.
        let sink = NIOFrameSink()
        let channel = EmbeddedChannel()
        try! channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(WebSocketFrameDecoder()), sink])
        func viaNIO() -> (frames: Int, sum: UInt64) {
            sink.reset()
            for read in reads { try! channel.writeInbound(read) }
            return (sink.frames, sink.sum)
        }
        func viaConnection() -> (frames: Int, sum: UInt64) {
            var connection = Connection(role: .server)
            return parse(reads, with: &connection)
        }
        func viaParser() -> (frames: Int, sum: UInt64) {
            var parser = FrameParser(role: .server)
            return parse(reads, with: &parser)
        }

        // Cross-check: same frames, same unmasked payload bytes.
        let expected = viaNIO()
        precondition(expected.frames == frameCount)
        precondition(viaConnection() == expected, "Connection disagrees with NIO")
        precondition(viaParser() == expected, "FrameParser disagrees with NIO")

        let nio = Contender(name: "NIO WebSocketFrameDecoder + unmaskedData") { n in
            var acc: UInt64 = 0
            for _ in 0..<n { acc &+= viaNIO().sum }
            return acc
        }
        harness.compare(
            family: "parse 16 B frames", payload: label, unit: .items(frameCount, "frames"),
            subject: Contender(name: "Connection.receive + nextEvent") { n in
                var connection = Connection(role: .server)
                var acc: UInt64 = 0
                for _ in 0..<n { acc &+= parse(reads, with: &connection).sum }
                return acc
            },
            peer: nio)
        harness.compare(
            family: "parse 16 B frames", payload: label, unit: .items(frameCount, "frames"),
            subject: Contender(name: "FrameParser.append + nextFrame") { n in
                var parser = FrameParser(role: .server)
                var acc: UInt64 = 0
                for _ in 0..<n { acc &+= parse(reads, with: &parser).sum }
                return acc
            },
            peer: nio)
        _ = try? channel.finish()
    }
}

/// DuplexCore's server side: `receive`, then `nextEvent` until nil; takes each message's payload.
@inline(never)
func parse(_ reads: [ByteBuffer], with connection: inout Connection) -> (frames: Int, sum: UInt64) {
    var frames = 0
    var sum: UInt64 = 0
    for read in reads {
        connection.receive(read)
        while let event = connection.nextEvent() {
            guard case .text(let payload) = event else { fatalError("unexpected event \(event)") }
            frames &+= 1
            sum &+= UInt64(payload.readableBytes) &+ UInt64(payload.getInteger(at: payload.readerIndex, as: UInt8.self)!)
        }
    }
    return (frames, sum)
}

/// The parser alone: `append`, then `nextFrame` until nil; takes each frame's payload.
@inline(never)
func parse(_ reads: [ByteBuffer], with parser: inout FrameParser) -> (frames: Int, sum: UInt64) {
    var frames = 0
    var sum: UInt64 = 0
    for read in reads {
        parser.append(read)
        while let frame = try! parser.nextFrame() {
            let payload = frame.payload
            frames &+= 1
            sum &+= UInt64(payload.readableBytes) &+ UInt64(payload.getInteger(at: payload.readerIndex, as: UInt8.self)!)
        }
    }
    return (frames, sum)
}

/// The handler after NIO's decoder: takes each frame's unmasked payload, as a NIOWebSocket
/// server's handler would. Its counters sit behind a pointer so that counting costs no dynamic
/// exclusivity checks (which a class's stored `var`s would).
final class NIOFrameSink: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame

    private let counters = UnsafeMutablePointer<UInt64>.allocate(capacity: 2)

    init() { reset() }
    deinit { counters.deallocate() }

    var frames: Int { Int(counters[0]) }
    var sum: UInt64 { counters[1] }
    func reset() { counters.initialize(repeating: 0, count: 2) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        let payload = frame.unmaskedData
        counters[0] &+= 1
        counters[1] &+= UInt64(payload.readableBytes) &+ UInt64(payload.getInteger(at: payload.readerIndex, as: UInt8.self)!)
    }
}
