import Duplex
import DuplexCore
import HTTPTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// ``DuplexUpgrader``, the seam for HTTP servers Duplex does not run: a NIO HTTP/1.1 server of
/// the test's own (NIOHTTP1's decoder and encoder, and a handler standing for a framework's) hands
/// its upgrade requests to the upgrader.
@Suite struct DuplexUpgraderTests {
    /// The framework's handler: plain requests get `200 plain`; requests for `/ws/...` go to the
    /// upgrader with the route `/ws/:name`, and a refusal is written as the upgrader answers it.
    final class FrameworkHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let upgrader: DuplexUpgrader
        let endpoint: WebSocketEndpoint
        let decoder: ByteToMessageHandler<HTTPRequestDecoder>
        let encoder: HTTPResponseEncoder
        private var head: HTTPRequestHead?

        init(upgrader: DuplexUpgrader, endpoint: WebSocketEndpoint, decoder: ByteToMessageHandler<HTTPRequestDecoder>,
             encoder: HTTPResponseEncoder) {
            self.upgrader = upgrader
            self.endpoint = endpoint
            self.decoder = decoder
            self.encoder = encoder
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body: break
            case .end:
                guard let head else { return }
                self.head = nil
                guard head.uri.hasPrefix("/ws/") else {
                    write(RouteResponse.text("plain\n"), keepAlive: true, context: context)
                    return
                }
                let name = String(head.uri.dropFirst(4))
                let channel = context.channel
                let handlers: [any RemovableChannelHandler] = [decoder, encoder, self]
                upgrader.upgrade(head, route: "/ws/:name", parameters: ["name": name], endpoint: endpoint, channel: channel,
                                 removing: handlers).assumeIsolated().whenSuccess { [self] result in
                    if case .refused(let response) = result {
                        write(response, keepAlive: false, context: context)
                    }
                }
            }
        }

        private func write(_ response: RouteResponse, keepAlive: Bool, context: ChannelHandlerContext) {
            var fields = response.headerFields
            fields[.contentLength] = "\(response.body.readableBytes)"
            fields[.connection] = keepAlive ? "keep-alive" : "close"
            var headers = HTTPHeaders()
            for field in fields { headers.add(name: field.name.rawName, value: field.value) }
            let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: response.status.code), headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        }
    }

    /// Runs the test's server with `endpoint` at `/ws/:name`, and `body` with its port and upgrader.
    /// - Parameter accepted: gets each connection's channel as it is accepted.
    static func withFramework(_ endpoint: WebSocketEndpoint, accepted: Mailbox<any Channel>? = nil,
                              _ body: (Int, DuplexUpgrader) async throws -> Void) async throws {
        let upgrader = DuplexUpgrader(configuration: .init(webSocket: quietConfiguration()), logger: testLogger())
        let channel = try await ServerBootstrap(group: testLoop)
            .childChannelInitializer { channel in
                accepted?.put(channel)
                return channel.eventLoop.makeCompletedFuture {
                    let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
                    let encoder = HTTPResponseEncoder()
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(decoder)
                    try sync.addHandler(encoder)
                    try sync.addHandler(FrameworkHandler(upgrader: upgrader, endpoint: endpoint, decoder: decoder, encoder: encoder))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(channel.localAddress?.port)
        do {
            try await body(port, upgrader)
        } catch {
            await upgrader.shutdown(gracePeriod: .milliseconds(100))
            try? await channel.close()
            throw error
        }
        await upgrader.shutdown(gracePeriod: .milliseconds(100))
        try await channel.close()
    }

    @Test func echoesTextAndBinaryAndKeepsTheFrameworksPlainRoutes() async throws {
        let seen = Mailbox<String>()
        let endpoint = WebSocketEndpoint(configuration: quietConfiguration(), onUpgrade: { request in
            seen.put("\(request.route) \(request.parameters["name"] ?? "-")")
            return .accept()
        }, handler: { ws in
            try await ws.send(text: "hello \(ws.request?.parameters["name"] ?? "?")")
            for try await message in ws.messages { try await ws.send(message) }
        })
        try await Self.withFramework(endpoint) { port, upgrader in
            let plain = try await TestClient.raw(port: port, sending: httpRequest("GET", "/"))
            let answer = try await plain.readResponse()
            #expect(answer.status == 200 && answer.body == "plain\n")
            await plain.close()

            // A frame sent with the request: the decoder forwards it to the WebSocket as it leaves.
            var early = ByteBuffer()
            FrameWriter.write(opcode: .text, maskKey: .random(), payload: ByteBuffer(string: "early"), to: &early)
            let client = try await TestClient.webSocket(port: port, path: "/ws/lobby", withRequest: early)
            #expect(try await seen.take() == "/ws/:name lobby")
            #expect(try await client.nextMessage() == .text("hello lobby"))
            #expect(try await client.nextMessage() == .text("early"))
            try await client.sendText("wörld ✓")
            #expect(try await client.nextMessage() == .text("wörld ✓"))
            try await client.sendBinary(patternBytes(70_000))
            #expect(try await client.nextMessage() == .binary(patternBytes(70_000)))
            try await eventually("one open WebSocket") { upgrader.connectionCount == 1 }
            try await client.sendClose(code: 1000)
            #expect(try await client.nextClose().code == 1000)
            try await client.waitForTCPClose()
        }
    }

    @Test func refusalsHaveTheServersStatusesAndCloseTheConnection() async throws {
        let endpoint = WebSocketEndpoint(configuration: quietConfiguration(), onUpgrade: { request in
            request.parameters["name"] == "secret" ? .reject(status: .forbidden, reason: "not for you") : .accept()
        }, handler: { _ in })
        try await Self.withFramework(endpoint) { port, _ in
            let wrongVersion = try await TestClient.raw(port: port, sending: httpRequest("GET", "/ws/a", headers: upgradeHeaders(version: "12")))
            let upgradeRequired = try await wrongVersion.readResponse()
            #expect(upgradeRequired.status == 426)
            #expect(upgradeRequired.headers[.secWebSocketVersion] == "13")
            try await wrongVersion.waitForTCPClose()

            let noKey = try await TestClient.raw(port: port, sending: httpRequest("GET", "/ws/a", headers: upgradeHeaders(omitting: ["Sec-WebSocket-Key"])))
            #expect(try await noKey.readResponse().status == 400)

            let forbidden = try await TestClient.raw(port: port, sending: httpRequest("GET", "/ws/secret", headers: upgradeHeaders()))
            let answer = try await forbidden.readResponse()
            #expect(answer.status == 403 && answer.body == "not for you\n")
            try await forbidden.waitForTCPClose()
        }
    }

    @Test func subprotocolAndTopicsAndShutdown() async throws {
        let subscribed = Mailbox<String?>()
        let endpoint = WebSocketEndpoint(subprotocols: ["chat.v2", "chat.v1"], configuration: quietConfiguration(), handler: { ws in
            _ = try await ws.subscribe(to: "news")
            subscribed.put(ws.subprotocol)
            for try await _ in ws.messages {}
        })
        try await Self.withFramework(endpoint) { port, upgrader in
            let client = try await TestClient.webSocket(port: port, path: "/ws/n", subprotocols: ["chat.v1", "chat.v2"])
            #expect(client.handshake?.headers[.secWebSocketProtocol] == "chat.v1")
            #expect(try await subscribed.take() == "chat.v1")
            #expect(upgrader.subscriberCount(of: "news") == 1)
            #expect(upgrader.publish(.text("extra"), to: "news") == 1)
            #expect(try await client.nextMessage() == .text("extra"))
            await upgrader.shutdown(gracePeriod: .seconds(2))
            #expect(try await client.nextClose().code == 1001)
            try await client.waitForTCPClose()
        }
    }

    @Test func theQuiesceEventOfAFrameworksShutdownClosesWith1001() async throws {
        let accepted = Mailbox<any Channel>()
        try await Self.withFramework(asyncEcho(configuration: quietConfiguration()), accepted: accepted) { port, upgrader in
            let client = try await TestClient.webSocket(port: port, path: "/ws/q")
            let channel = try await accepted.take()
            try await client.sendText("before")
            #expect(try await client.nextMessage() == .text("before"))
            // What NIO's ServerQuiescingHelper (Hummingbird's graceful shutdown) sends each connection.
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            #expect(try await client.nextClose().code == 1001)
            try await client.waitForTCPClose()
            try await eventually("no open WebSocket") { upgrader.connectionCount == 0 }
        }
    }
}
