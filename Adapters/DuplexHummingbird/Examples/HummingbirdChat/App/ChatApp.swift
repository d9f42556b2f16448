import DuplexHummingbird
import Hummingbird
import Logging

/// A Hummingbird 2 app with a chat on its own port: `GET /health`, a request logger, and rooms
/// at `ws://HOST:PORT/chat/ROOM?name=NAME`, each room a Duplex topic. Every text a member sends
/// reaches the whole room, the sender included, as `NAME: TEXT`.
public enum ChatApp {
    /// The app, listening on `host`:`port` (0: any free port); `runService()` runs it until
    /// SIGINT or SIGTERM, then closes every WebSocket with 1001 and stops.
    public static func build(host: String = "127.0.0.1", port: Int = 8083, logger: Logger = Logger(label: "hummingbird-chat"))
        -> some ApplicationProtocol
    {
        let upgrader = DuplexUpgrader(logger: logger)
        let router = Router(context: ChatContext.self)
        router.add(middleware: LogRequestsMiddleware(.info))
        router.add(middleware: NameFromQuery())
        router.get("/health") { _, _ in HTTPResponse.Status.ok }
        router.webSocket("/chat/:room", upgrader: upgrader, endpoint: WebSocketEndpoint { ws in
            guard let room = ws.request?.parameters["room"], let name = ws.userData as? String else { return }
            let topic = "chat." + room
            _ = try await ws.subscribe(to: topic)
            try await ws.send(text: "joined \(room) as \(name)")
            for try await message in ws.messages {
                guard case .text(let text) = message else { continue }
                upgrader.publish(.text("\(name): \(text)"), to: topic)  // the whole room, the sender too
            }
        }, onUpgrade: { _, context in
            // The middleware put the name in the context; without one there is no connection.
            guard let name = context.name, !name.isEmpty else { return .reject(status: .badRequest, reason: "add ?name=NAME") }
            return .accept(userData: name)
        })
        var app = Application(router: router, server: .duplexHTTP1(), configuration: .init(address: .hostname(host, port: port)),
                              logger: logger)
        app.addServices(upgrader)  // part of the app's ServiceGroup: 1001 to every WebSocket on shutdown
        return app
    }
}

/// The request context of the app: Hummingbird's, and the chat name of the request.
struct ChatContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var name: String?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}

/// Puts the `name` query parameter in the context, for the routes after it.
struct NameFromQuery: RouterMiddleware {
    func handle(_ request: Request, context: ChatContext,
                next: (Request, ChatContext) async throws -> Response) async throws -> Response {
        var context = context
        context.name = request.uri.queryParameters.get("name")
        return try await next(request, context)
    }
}
