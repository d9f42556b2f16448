import Duplex
import DuplexCore
import DuplexHummingbird
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Testing

/// The request context of the test app: the middleware puts the user (from `X-User`) there.
struct AppContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var user: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        user = nil
    }
}

/// Reads the user off the request, for the routes after it (WebSocket routes included); answers
/// 401 itself to a request with `X-Blocked`.
struct UserMiddleware: RouterMiddleware {
    typealias Context = AppContext
    func handle(_ request: Request, context: AppContext,
                next: (Request, AppContext) async throws -> Response) async throws -> Response {
        if request.headers[HTTPField.Name("X-Blocked")!] != nil {
            return Response(status: .unauthorized, headers: [.wwwAuthenticate: "Bearer"])
        }
        var context = context
        context.user = request.headers[HTTPField.Name("X-User")!]
        return try await next(request, context)
    }
}

/// Duplex endpoints on a Hummingbird app's router and port, through Duplex's client.
@Suite struct DuplexHummingbirdTests {
    static let quiet = WebSocketConfiguration(pingInterval: nil)

    static func logger() -> Logger {
        var logger = Logger(label: "duplex.hummingbird.test")
        logger.logLevel = .critical
        return logger
    }

    /// The app: `GET /hello`, an echo at `/echo` (permessage-deflate offered), `/chat/:room` (two
    /// subprotocols; the context's user must be there), `/topics/:name` (subscribes to its topic),
    /// all behind ``UserMiddleware``.
    static func withApp(_ body: @escaping @Sendable (_ port: Int, _ upgrader: DuplexUpgrader, _ client: any TestClientProtocol) async throws -> Void) async throws {
        let upgrader = DuplexUpgrader(configuration: .init(webSocket: quiet), logger: logger())
        let router = Router(context: AppContext.self)
        router.add(middleware: UserMiddleware())
        router.get("/hello") { _, context in "hello \(context.user ?? "stranger")\n" }
        router.webSocket("/echo", upgrader: upgrader, endpoint: WebSocketEndpoint(extensions: [PerMessageDeflate.ServerNegotiator()]) { ws in
            for try await message in ws.messages { try await ws.send(message) }
        })
        router.group("/chat").webSocket(":room", upgrader: upgrader, endpoint: WebSocketEndpoint(subprotocols: ["chat.v2", "chat.v1"]) { ws in
            let request = try #require(ws.request)
            try await ws.send(text: "\(ws.userData as? String ?? "?") in \(request.parameters["room"] ?? "?") (\(request.route)) over \(ws.subprotocol ?? "none")")
        }, onUpgrade: { _, context in
            guard let user = context.user else { return .reject(status: .forbidden, reason: "who are you?") }
            return .accept(userData: user)
        })
        router.webSocket("/topics/:name", upgrader: upgrader, endpoint: WebSocketEndpoint { ws in
            _ = try await ws.subscribe(to: ws.request?.parameters["name"] ?? "")
            try await ws.send(text: "subscribed")
            for try await _ in ws.messages {}
        })
        var app = Application(router: router, server: .duplexHTTP1(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              logger: logger())
        app.addServices(upgrader)
        try await app.test(.live) { client in
            try await body(try #require(client.port), upgrader, client)
        }
    }

    static func connect(_ port: Int, _ path: String, subprotocols: [String] = [], user: String? = nil) async throws -> WebSocketConnection {
        var fields = HTTPFields()
        if let user { fields[HTTPField.Name("X-User")!] = user }
        return try await WebSocketConnection.connect(
            to: "ws://127.0.0.1:\(port)\(path)",
            configuration: .init(webSocket: quiet, subprotocols: subprotocols, headerFields: fields, proxy: .none),
            logger: logger())
    }

    static func next(_ ws: WebSocketConnection) async throws -> WebSocketMessage? {
        var iterator = ws.messages.makeAsyncIterator()
        return try await iterator.next()
    }

    @Test func echoesTextAndBinaryBesideAPlainRoute() async throws {
        try await Self.withApp { port, upgrader, client in
            let ws = try await Self.connect(port, "/echo")
            try await ws.send(text: "hello, wörld ✓")
            #expect(try await Self.next(ws) == .text("hello, wörld ✓"))
            let bytes = ByteBuffer(bytes: (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try await ws.send(binary: bytes)
            #expect(try await Self.next(ws) == .binary(bytes))
            #expect(upgrader.connectionCount == 1)

            // The app's plain route answers on the same port, with the WebSocket open.
            try await client.execute(uri: "/hello", method: .get, headers: [HTTPField.Name("X-User")!: "ada"]) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "hello ada\n")
            }
            #expect(try await ws.close().code == .normalClosure)
        }
    }

    @Test func negotiatesASubprotocolAndSeesTheRequestContext() async throws {
        try await Self.withApp { port, _, _ in
            let ws = try await Self.connect(port, "/chat/lobby", subprotocols: ["chat.v1", "chat.v2"], user: "ada")
            #expect(ws.subprotocol == "chat.v1")
            let greeting = try await Self.next(ws)
            #expect(greeting == .text("ada in lobby (/chat/{room}) over chat.v1"))
            _ = await ws.waitForClose()
        }
    }

    @Test func refusesWithTheServersStatuses() async throws {
        try await Self.withApp { port, _, client in
            // The context hook refuses: no user.
            do {
                _ = try await Self.connect(port, "/chat/lobby")
                Issue.record("the upgrade without a user was accepted")
            } catch WebSocketError.handshakeFailed(.unexpectedStatus(let status, _)) {
                #expect(status == .forbidden)
            }
            // A version other than 13: 426 with the version Duplex speaks.
            // Hummingbird's test client sets its own `Connection`: this request goes as written.
            let answer = try await rawExchange(port: port, """
                GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n
                """)
            // The whole answer came, then the connection closed (rawExchange reads to the end).
            #expect(answer.hasPrefix("HTTP/1.1 426 Upgrade Required\r\n"), "\(answer)")
            #expect(answer.lowercased().contains("\r\nsec-websocket-version: 13\r\n"))
            #expect(answer.lowercased().contains("\r\nconnection: close\r\n"))
            // The middleware answers before the route: its 401 reaches the client, and the connection closes.
            let blocked = try await rawExchange(port: port, """
                GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Blocked: 1\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n
                """)
            #expect(blocked.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"), "\(blocked)")
            #expect(blocked.lowercased().contains("\r\nwww-authenticate: bearer\r\n"))
            // Not an upgrade at all: 426, as at a WebSocketServer's endpoint.
            try await client.execute(uri: "/echo", method: .get) { response in
                #expect(response.status == .upgradeRequired)
            }
        }
    }

    @Test func publishesToSubscribersOfAHummingbirdRoute() async throws {
        try await Self.withApp { port, upgrader, _ in
            let ws = try await Self.connect(port, "/topics/news")
            #expect(try await Self.next(ws) == .text("subscribed"))
            #expect(upgrader.subscriberCount(of: "news") == 1)
            #expect(upgrader.publish(.text("extra, extra"), to: "news") == 1)
            #expect(try await Self.next(ws) == .text("extra, extra"))
            #expect(upgrader.topics == ["news": 1])
            #expect(try await ws.close().code == .normalClosure)
        }
    }
}

/// Collects what a connection receives until it closes.
final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var received = ByteBuffer()
    let done: EventLoopPromise<String>

    init(done: EventLoopPromise<String>) { self.done = done }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.succeed(String(buffer: received))
    }
}

/// Sends `request` as it is on a new connection and returns everything the server answers
/// before it closes the connection (within 10 s).
func rawExchange(port: Int, _ request: String) async throws -> String {
    let loop = MultiThreadedEventLoopGroup.singleton.any()
    let done = loop.makePromise(of: String.self)
    let channel = try await ClientBootstrap(group: loop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(done: done)) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    try await channel.writeAndFlush(ByteBuffer(string: request))
    let timeout = loop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
    defer { timeout.cancel() }
    return try await done.futureResult.get()
}
