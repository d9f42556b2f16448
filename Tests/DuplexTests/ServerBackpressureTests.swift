import Duplex
import DuplexCore
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// Backpressure both ways: a peer that stops reading meets the outbound limits and policy; a
/// handler that stops consuming makes the server stop reading.
@Suite struct ServerBackpressureTests {
    static let chunkBytes = patternBytes(64 << 10, seed: 5)
    static let chunk = ByteBuffer(bytes: chunkBytes)

    /// What a flooding callback endpoint saw.
    struct FloodStats: Sendable {
        var accepted = 0  // sends answered .sent or .buffered
        var bufferedAnswers = 0
        var maxBufferedBytes = 0
        var bufferedAtDrop = 0
        var last: SendResult = .sent
        var afterDrop: SendResult = .sent
    }

    /// A callback endpoint that, on the text "flood", sends 64 KiB messages until one is dropped;
    /// echoes anything else; sends "drained" on its first onDrain after the flood.
    static func floodEndpoint(_ configuration: WebSocketConfiguration, stats: Mailbox<FloodStats>,
                              closes: Mailbox<CloseFrame>) -> WebSocketEndpoint {
        let flooded = NIOLockedValueBox(false)
        return WebSocketEndpoint(configuration: configuration, callbacks: WebSocketCallbacks(
            onMessage: { ws, data in
                guard data.text == "flood" else {
                    ws.send(data)
                    return
                }
                var s = FloodStats()
                for _ in 0..<100_000 {
                    let result = ws.send(binary: chunk)
                    s.last = result
                    if result == .dropped {
                        s.bufferedAtDrop = ws.bufferedBytes
                        break
                    }
                    s.accepted += 1
                    if result == .buffered { s.bufferedAnswers += 1 }
                    s.maxBufferedBytes = max(s.maxBufferedBytes, ws.bufferedBytes)
                }
                s.afterDrop = ws.send(binary: chunk)
                flooded.withLockedValue { $0 = true }
                stats.put(s)
            },
            onDrain: { ws in
                let first = flooded.withLockedValue { was in
                    defer { was = false }
                    return was
                }
                if first { ws.send(text: "drained") }
            },
            onClose: { _, frame in closes.put(frame) }
        ))
    }

    static let hardLimit = 1 << 20

    /// The close timeout is long: the server's close frame waits behind the flood, and the client
    /// drains it before answering, which took over 5 s (the default) on two loaded cores.
    static func floodConfiguration(_ policy: WebSocketConfiguration.BackpressurePolicy) -> WebSocketConfiguration {
        quietConfiguration(closeTimeout: .seconds(30), outboundHighWaterMark: 256 << 10, outboundLowWaterMark: 64 << 10,
                           outboundHardLimit: hardLimit, backpressurePolicy: policy)
    }

    /// Reads `count` binary messages of the flood.
    static func drainFlood(_ client: TestClient, count: Int) async throws {
        for i in 0..<count {
            let event = try await client.nextMessage()
            guard event == .binary(chunkBytes) else {
                Issue.record("message \(i) of the flood: \(event)")
                return
            }
        }
    }

    @Test func floodingASlowReaderHitsTheHardLimitAndCloses1013() async throws {
        let stats = Mailbox<FloodStats>()
        let closes = Mailbox<CloseFrame>()
        var router = WebSocketRouter()
        router.webSocket("/flood", Self.floodEndpoint(Self.floodConfiguration(.close(.tryAgainLater)), stats: stats, closes: closes))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/flood")
            try await client.setReading(false)
            try await client.sendText("flood")
            let s = try await stats.take()
            #expect(s.last == .dropped)
            #expect(s.afterDrop == .dropped)
            #expect(s.bufferedAnswers > 0)
            #expect(s.maxBufferedBytes <= Self.hardLimit)
            #expect(s.maxBufferedBytes > (256 << 10))  // it did pass the high-water mark
            #expect(s.bufferedAtDrop + (64 << 10) > Self.hardLimit)

            // The accepted messages all arrive, then the close frame with 1013.
            try await client.setReading(true)
            try await Self.drainFlood(client, count: s.accepted)
            let close = try await client.nextClose()
            #expect(close.code == 1013)
            try await client.waitForTCPClose()
            #expect(try await closes.take().code == .tryAgainLater)
        }
    }

    @Test func dropPolicyDropsMessagesAndKeepsTheConnection() async throws {
        let stats = Mailbox<FloodStats>()
        let closes = Mailbox<CloseFrame>()
        var router = WebSocketRouter()
        router.webSocket("/flood", Self.floodEndpoint(Self.floodConfiguration(.drop), stats: stats, closes: closes))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/flood")
            try await client.setReading(false)
            try await client.sendText("flood")
            let s = try await stats.take()
            #expect(s.last == .dropped)
            #expect(s.afterDrop == .dropped)
            #expect(s.maxBufferedBytes <= Self.hardLimit)

            try await client.setReading(true)
            try await Self.drainFlood(client, count: s.accepted)
            // onDrain fired once the buffer emptied, and the connection is still open.
            #expect(try await client.nextMessage() == .text("drained"))
            try await client.sendText("still open")
            #expect(try await client.nextMessage() == .text("still open"))
            #expect(closes.pending.isEmpty)
            try await client.sendClose(code: 1000)
            #expect(try await client.nextClose().code == 1000)
            #expect(try await closes.take().code == .normalClosure)
        }
    }

    @Test func asyncSendSuspendsWhileThePeerDoesNotRead() async throws {
        let total = 256  // 16 MiB: far more than the socket buffers take
        let returned = Counter()
        let done = Mailbox<Int>()
        var router = WebSocketRouter()
        router.webSocket("/push", WebSocketEndpoint(configuration: quietConfiguration(
            outboundHighWaterMark: 256 << 10, outboundLowWaterMark: 64 << 10
        )) { ws in
            var iterator = ws.messages.makeAsyncIterator()
            _ = try await iterator.next()  // "go"
            for _ in 0..<total {
                try await ws.send(binary: Self.chunk)
                returned.increment()
            }
            done.put(returned.current)
            while try await iterator.next() != nil {}
        })
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/push")
            try await client.setReading(false)
            try await client.sendText("go")
            // Wait until the sends start, then until they stop returning: no progress for 300 ms.
            let blockedAt = try await waitUntilStable(returned)
            #expect(blockedAt > 0)
            #expect(blockedAt < total, "send never suspended")
            #expect(done.pending.isEmpty)

            // Reading again lets every send complete; all messages arrive in order.
            try await client.setReading(true)
            try await Self.drainFlood(client, count: total)
            #expect(try await done.take() == total)
            await client.close()
        }
    }

    @Test func aSuspendedSendFailsWhenThePeerGoesAway() async throws {
        let outcome = Mailbox<String>()
        let sent = Counter()
        var router = WebSocketRouter()
        router.webSocket("/push", WebSocketEndpoint(configuration: quietConfiguration(
            outboundHighWaterMark: 256 << 10, outboundLowWaterMark: 64 << 10
        )) { ws in
            var iterator = ws.messages.makeAsyncIterator()
            _ = try await iterator.next()  // "go"
            do {
                for _ in 0..<10_000 {
                    try await ws.send(binary: Self.chunk)
                    sent.increment()
                }
                outcome.put("all sent")
            } catch WebSocketError.closed(let frame) {
                outcome.put("closed \(frame.code?.rawValue ?? 0)")
            }
        })
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/push")
            try await client.setReading(false)
            try await client.sendText("go")
            // The sender blocks in a send.
            let blockedAt = try await waitUntilStable(sent)
            #expect(blockedAt < 10_000)
            #expect(outcome.pending.isEmpty)
            await client.close()  // TCP close without a close frame
            #expect(try await outcome.take() == "closed 1006")
        }
    }

    @Test func aHandlerThatDoesNotConsumeStopsTheServerReading() async throws {
        let gate = Gate()
        let received = Counter()
        let done = Mailbox<Int>()
        var router = WebSocketRouter()
        router.webSocket("/slow", WebSocketEndpoint(configuration: quietConfiguration(inboundQueueSize: 2)) { ws in
            await gate.wait()
            for try await message in ws.messages {
                received.increment(by: message.bytes.readableBytes)
                if received.current == Self.inboundTotal { done.put(received.current) }
            }
        })
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port, path: "/slow")
            // One 1 MiB masked frame, written 48 times without waiting.
            var encoded = ByteBuffer()
            FrameWriter.write(opcode: .binary, maskKey: .random(), payload: ByteBuffer(bytes: patternBytes(1 << 20)), to: &encoded)
            let frame = encoded
            let lastWrite = try await client.eventLoop.submit { () -> EventLoopFuture<Void> in
                for _ in 1..<Self.inboundCount { client.channel.write(frame, promise: nil) }
                return client.channel.writeAndFlush(frame)
            }.get()
            let completed = NIOLockedValueBox(false)
            lastWrite.whenComplete { _ in completed.withLockedValue { $0 = true } }

            // The server stops reading: the client's last write cannot complete.
            try await Task.sleep(for: .milliseconds(400))
            #expect(completed.withLockedValue { $0 } == false, "the server read everything without a consumer")
            #expect(received.current == 0)
            let pending = try await client.channel.getOption(.bufferedWritableBytes).get()
            #expect(pending > 0)

            // The handler consumes: the server reads again and everything arrives.
            gate.open()
            #expect(try await done.take(timeout: .seconds(20)) == Self.inboundTotal)
            try await lastWrite.get()
            await client.close()
        }
    }

    @Test func aPingFloodFromAPeerThatDoesNotReadDoesNotGrowTheOutboundBuffer() async throws {
        // Pongs are not data messages: no send policy applies to them. A peer that sends pings
        // and never reads must still not make the server buffer pongs without bound.
        let hardLimit = 256 << 10
        let reports = Mailbox<Int>()
        var router = WebSocketRouter()
        router.webSocket("/report", WebSocketEndpoint(
            // .drop: the report's echo may meet a buffer that one read batch of pongs refilled.
            configuration: quietConfiguration(outboundHighWaterMark: 64 << 10, outboundLowWaterMark: 16 << 10,
                                              outboundHardLimit: hardLimit, backpressurePolicy: .drop),
            callbacks: WebSocketCallbacks(onMessage: { ws, data in
                if data.text == "report" { reports.put(ws.bufferedBytes) }
                ws.send(data)
            })
        ))
        try await withServer(router) { port, _ in
            // A small receive buffer: the kernel holds few pongs, the server's own buffer the rest.
            let client = try await TestClient.webSocket(port: port, path: "/report", receiveBuffer: 16 << 10)
            _ = try await client.wait("pong counting") { h in h.recordPongs = false; return true }
            try await client.setReading(false)
            let pings = Self.pingFloodCount
            var ping = ByteBuffer()
            FrameWriter.write(opcode: .ping, maskKey: .random(), payload: ByteBuffer(bytes: patternBytes(125)), to: &ping)
            var flood = ByteBuffer()
            flood.reserveCapacity(pings * ping.readableBytes + 16)
            for _ in 0..<pings { flood.writeImmutableBuffer(ping) }
            FrameWriter.write(opcode: .text, maskKey: .random(), payload: ByteBuffer(string: "report"), to: &flood)
            let promise = client.eventLoop.makePromise(of: Void.self)
            client.channel.writeAndFlush(flood, promise: promise)
            let written = promise.futureResult

            // A server that reads on while it cannot write gets to the report soon, with megabytes
            // of pongs buffered (and then drops the echo and closes with 1013). One that stops
            // reading over its hard limit sees the report only once the client reads again: wait
            // for the report or for the server to stop taking the flood (the client's unsent bytes
            // stop shrinking: 300 ms, or 1 s once all of them are in the socket buffers).
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(20)
            var lastPending = -1
            var stableSince = clock.now
            while reports.pending.isEmpty && clock.now < deadline {
                let pending = try await client.channel.getOption(.bufferedWritableBytes).get()
                if pending != lastPending {
                    lastPending = pending
                    stableSince = clock.now
                } else if clock.now - stableSince >= (pending > 0 ? .milliseconds(300) : .seconds(1)) {
                    break
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            let early = !reports.pending.isEmpty
            try await client.setReading(true)
            let buffered = try await reports.take()
            let bound = hardLimit + (512 << 10)  // the limit plus one read batch of pongs
            #expect(buffered <= bound, "\(buffered) bytes of pongs buffered (reported \(early ? "before" : "after") reading resumed)")
            // Every ping was answered, and the connection is still open.
            _ = try await client.wait("all pongs", timeout: .seconds(30)) { h -> Bool? in
                if case .close(let code, _) = h.events.last { throw TestClientError("closed with \(code ?? 0)") }
                return h.pongsReceived == pings ? true : nil
            }
            try await client.sendText("after")
            #expect(try await client.wait("the echo") { h in h.events.last == .text("after") ? true : nil })
            try await written.get()
            await client.close()
        }
    }

    static let pingFloodCount = 48 << 10
    static let inboundCount = 48
    static let inboundTotal = 48 << 20
}
