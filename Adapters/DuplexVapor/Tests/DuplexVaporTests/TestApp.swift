import DuplexVapor
import Logging
import NIOCore
import Testing
import Vapor

/// Where ``UserMiddleware`` keeps the request's user.
struct UserKey: StorageKey {
    typealias Value = String
}

/// Reads the user off the request (`X-User`) for the routes after it, WebSocket routes
/// included; answers 401 itself to a request with `X-Blocked`.
struct UserMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if request.headers.first(name: "X-Blocked") != nil {
            return Response(status: .unauthorized, headers: ["WWW-Authenticate": "Bearer"])
        }
        request.storage[UserKey.self] = request.headers.first(name: "X-User")
        return try await next.respond(to: request)
    }
}

/// A Vapor app on 127.0.0.1 (a free port) with Duplex endpoints, for one test.
struct TestApp {
    static let quiet = WebSocketConfiguration(pingInterval: nil)

    /// An echo, permessage-deflate offered: the app's `/echo`, and a `WebSocketServer`'s in a test.
    static let echo = WebSocketEndpoint(extensions: [PerMessageDeflate.ServerNegotiator()]) { ws in
        for try await message in ws.messages { try await ws.send(message) }
    }

    let app: Application
    let upgrader: DuplexUpgrader
    let port: Int

    static func logger() -> Logger {
        var logger = Logger(label: "duplex.vapor.test")
        logger.logLevel = .critical
        return logger
    }

    /// The app: `GET /hello`, an echo at `/echo` (permessage-deflate offered), `/chat/:room` (two
    /// subprotocols; the middleware's user must be there), `/topics/:name` (subscribes to its
    /// topic), all behind ``UserMiddleware``; its upgrader in the app's lifecycle.
    static func start() async throws -> TestApp {
        let app = try await Application.make(.testing, logger: logger())
        let upgrader = DuplexUpgrader(configuration: .init(webSocket: quiet, shutdownGracePeriod: .seconds(2)), logger: logger())
        app.lifecycle.use(upgrader)
        let routes = app.grouped(UserMiddleware())
        routes.get("hello") { request in "hello \(request.storage[UserKey.self] ?? "stranger")\n" }
        routes.webSocket("echo", upgrader: upgrader, endpoint: echo)
        routes.grouped("chat").webSocket(":room", upgrader: upgrader, endpoint: WebSocketEndpoint(subprotocols: ["chat.v2", "chat.v1"]) { ws in
            let request = try #require(ws.request)
            try await ws.send(text: "\(ws.userData as? String ?? "?") in \(request.parameters["room"] ?? "?") (\(request.route)) over \(ws.subprotocol ?? "none")")
        }, onUpgrade: { _, request in
            guard let user = request.storage[UserKey.self] else { return .reject(status: .forbidden, reason: "who are you?") }
            return .accept(userData: user)
        })
        routes.webSocket("topics", ":name", upgrader: upgrader, endpoint: WebSocketEndpoint { ws in
            _ = try await ws.subscribe(to: ws.request?.parameters["name"] ?? "")
            try await ws.send(text: "subscribed")
            for try await _ in ws.messages {}
        })
        do {
            try await app.asyncBoot()
            try await app.server.start(address: .hostname("127.0.0.1", port: 0))
            let port = try #require(app.http.server.shared.localAddress?.port)
            return TestApp(app: app, upgrader: upgrader, port: port)
        } catch {
            try? await app.asyncShutdown()
            throw error
        }
    }

    /// Runs `body` with a started app, then shuts it down (server, then the app's lifecycle).
    static func with(_ body: (TestApp) async throws -> Void) async throws {
        let app = try await start()
        do {
            try await body(app)
        } catch {
            await app.stop()
            throw error
        }
        await app.stop()
    }

    func stop() async {
        await app.server.shutdown()
        try? await app.asyncShutdown()
    }

    func connect(_ path: String, subprotocols: [String] = [], user: String? = nil) async throws -> WebSocketConnection {
        var fields = HTTPFields()
        if let user { fields[HTTPField.Name("X-User")!] = user }
        return try await WebSocketConnection.connect(
            to: "ws://127.0.0.1:\(port)\(path)",
            configuration: .init(webSocket: Self.quiet, subprotocols: subprotocols, headerFields: fields, proxy: .none),
            logger: Self.logger())
    }
}

/// The next message of `ws`, or nil once it closed.
func next(_ ws: WebSocketConnection) async throws -> WebSocketMessage? {
    var iterator = ws.messages.makeAsyncIterator()
    return try await iterator.next()
}
