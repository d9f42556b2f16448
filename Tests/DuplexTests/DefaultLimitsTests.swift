import Duplex
import DuplexCore
import NIOCore
import Testing

/// The defaults that bound one connection's memory (README, "Limits and timers"), and the
/// close code of a message over the default limit.
@Suite struct DefaultLimitsTests {
    @Test func theDefaultsBoundAConnection() {
        let configuration = WebSocketConfiguration()
        #expect(configuration.limits == Limits(maxFrameSize: 1 << 20, maxMessageSize: 1 << 20))
        #expect(configuration.inboundQueueSize == 16)
        #expect(configuration.inboundQueueBytes == 1 << 20)
        #expect(configuration.outboundHighWaterMark == 1 << 20)
        #expect(configuration.outboundHardLimit == 16 << 20)
        let server = WebSocketServer.Configuration()
        #expect(server.maxHandshakeHeaderBytes == 16 << 10)
        #expect(server.maxRequestBodyBytes == 1 << 20)
        // The worst case of received messages waiting for one slow consumer: 16 MiB (it was 256 MiB).
        let queued = max(configuration.inboundQueueSize * configuration.limits.maxMessageSize,
                         configuration.inboundQueueBytes + configuration.limits.maxMessageSize)
        #expect(queued == 16 << 20)
    }

    @Test(arguments: ServerEchoTests.API.allCases)
    func aMessageOverTheDefaultLimitIsClosedWith1009(_ api: ServerEchoTests.API) async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", api == .async ? asyncEcho(configuration: quietConfiguration())
                                                : callbackEcho(configuration: quietConfiguration()))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port)
            // Exactly the limit: echoed.
            let limit = patternBytes(1 << 20, seed: 3)
            try await client.sendBinary(limit)
            #expect(try await client.nextMessage(timeout: .seconds(20)) == .binary(limit))
            // One byte more, in two frames under the frame limit: 1009.
            try await client.sendFrame(.binary, ByteBuffer(bytes: patternBytes(1 << 19)), fin: false)
            try await client.sendFrame(.continuation, ByteBuffer(bytes: patternBytes((1 << 19) + 1)), fin: true)
            #expect(try await client.nextClose().code == 1009)
            await client.close()
        }
    }

    @Test func aFrameOverTheDefaultLimitIsClosedWith1009() async throws {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho(configuration: quietConfiguration()))
        try await withServer(router) { port, _ in
            let client = try await TestClient.webSocket(port: port)
            try await client.sendBinary(patternBytes((1 << 20) + 1))
            #expect(try await client.nextClose().code == 1009)
            await client.close()
        }
    }
}
