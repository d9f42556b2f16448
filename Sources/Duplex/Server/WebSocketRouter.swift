import HTTPTypes
import NIOCore

/// The paths of a ``WebSocketServer``: WebSocket endpoints and plain HTTP routes on the same port.
///
/// ```swift
/// var router = WebSocketRouter()
/// router.webSocket("/echo", WebSocketEndpoint { ws in
///     for try await message in ws.messages { try await ws.send(message) }
/// })
/// router.webSocket("/topics/:name", topicEndpoint)         // request.parameters["name"]
/// router.get("/") { _ in .html("<p>hello</p>") }
/// router.post("/publish/:name") { request in
///     await publish(request.body, to: request.parameters["name"]!)
///     return RouteResponse(status: .noContent)
/// }
/// ```
///
/// A path is matched without its query. A path segment written `:name` matches any one non-empty
/// segment and hands it to the handler as `request.parameters["name"]`. An exact path (one without
/// parameters) always wins over a path with parameters; among paths with parameters, the one with
/// a literal segment where the other has a parameter wins, comparing from the left.
///
/// A plain request to a path with routes, but none for its method, is answered 405 with an `Allow`
/// field naming the methods the path has; a plain request to a WebSocket endpoint's path (without
/// a route of its own) 426; anything else 404.
public struct WebSocketRouter: Sendable {
    var webSockets = PathTable<WebSocketEndpoint>()
    var routes = PathTable<[HTTPRequest.Method: RouteHandler]>()

    /// An empty router.
    public init() {}

    /// Serves WebSocket connections at `path` (an exact path, or one with `:name` parameters).
    /// Registering a path again replaces its endpoint.
    public mutating func webSocket(_ path: String, _ endpoint: WebSocketEndpoint) {
        webSockets.set(path) { _ in endpoint }
    }

    /// Serves HTTP requests of `method` at `path` (an exact path, or one with `:name` parameters).
    /// Registering a method and path again replaces its handler.
    public mutating func route(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping RouteHandler) {
        routes.set(path) { methods in
            var methods = methods ?? [:]
            methods[method] = handler
            return methods
        }
    }

    /// Serves GET requests at `path`, and HEAD requests unless a HEAD route of its own is set
    /// (answered by the GET handler, without the body).
    public mutating func get(_ path: String, _ handler: @escaping RouteHandler) {
        route(.get, path, handler)
    }

    /// Serves POST requests at `path`; the handler finds the body in ``RouteRequest/body``.
    public mutating func post(_ path: String, _ handler: @escaping RouteHandler) {
        route(.post, path, handler)
    }

    /// Whether a route for `method` is registered at exactly `path` (as written when registered).
    func hasRoute(_ method: HTTPRequest.Method, at path: String) -> Bool {
        routes.value(at: path)?[method] != nil
    }

    /// The WebSocket endpoint for a request path, with its registered path and parameters.
    func webSocketEndpoint(for path: String) -> PathTable<WebSocketEndpoint>.Match? {
        webSockets.matches(path).first
    }

    /// What the routes say about a plain request.
    enum RouteLookup {
        /// The handler, with the route's registered path and parameters (a HEAD request without a
        /// HEAD route gets the GET route's handler).
        case found(RouteHandler, route: String, parameters: [String: String])
        /// The path has routes, but none for this method: these are the methods it has.
        case methodNotAllowed([HTTPRequest.Method])
        /// No route matches the path.
        case notFound
    }

    /// The route for `method` at `path`: the first matching path (in priority order) that has
    /// the method.
    func route(_ method: HTTPRequest.Method, path: String) -> RouteLookup {
        let matches = routes.matches(path)
        guard !matches.isEmpty else { return .notFound }
        for match in matches {
            if let handler = match.value[method] ?? (method == .head ? match.value[.get] : nil) {
                return .found(handler, route: match.route, parameters: match.parameters)
            }
        }
        var allowed = Set<HTTPRequest.Method>()
        for match in matches {
            allowed.formUnion(match.value.keys)
            if match.value[.get] != nil { allowed.insert(.head) }
        }
        return .methodNotAllowed(allowed.sorted(by: Self.methodOrder))
    }

    /// The order of methods in an `Allow` field: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS,
    /// then any other alphabetically.
    private static func methodOrder(_ a: HTTPRequest.Method, _ b: HTTPRequest.Method) -> Bool {
        let known: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]
        switch (known.firstIndex(of: a), known.firstIndex(of: b)) {
        case (let x?, let y?): return x < y
        case (.some, nil): return true
        case (nil, .some): return false
        case (nil, nil): return a.rawValue < b.rawValue
        }
    }
}

/// A plain HTTP route's handler: the request (with its body) in, the response out. It runs in a
/// task of its own, off the event loop; the response is written on the connection's loop. A thrown
/// error is answered 500 (and logged).
public typealias RouteHandler = @Sendable (RouteRequest) async throws -> RouteResponse

/// A registered path: literal segments and `:name` parameters.
struct PathPattern: Sendable {
    enum Segment: Sendable, Hashable {
        case literal(Substring)
        case parameter(String)
    }

    let text: String
    let segments: [Segment]

    init(_ text: String) {
        self.text = text
        var names = Set<String>()
        segments = text.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            guard segment.first == ":" else { return .literal(segment) }
            let name = String(segment.dropFirst())
            precondition(!name.isEmpty, "a path parameter needs a name: \(text)")
            precondition(names.insert(name).inserted, "path parameter :\(name) appears twice in \(text)")
            return .parameter(name)
        }
    }

    var hasParameters: Bool {
        segments.contains { if case .parameter = $0 { true } else { false } }
    }

    /// The parameters if `path` (split at `/`) matches, else nil. A parameter matches one
    /// non-empty segment.
    func match(_ path: [Substring]) -> [String: String]? {
        guard path.count == segments.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(segments, path) {
            switch segment {
            case .literal(let literal):
                guard literal == part else { return nil }
            case .parameter(let name):
                guard !part.isEmpty else { return nil }
                parameters[name] = String(part)
            }
        }
        return parameters
    }

    /// Whether this pattern is tried before `other`: at the first segment where one has a literal
    /// and the other a parameter, the literal wins; otherwise the longer one.
    func precedes(_ other: PathPattern) -> Bool {
        for (a, b) in zip(segments, other.segments) {
            switch (a, b) {
            case (.literal, .parameter): return true
            case (.parameter, .literal): return false
            default: continue
            }
        }
        return segments.count > other.segments.count
    }
}

/// Values by path: exact paths in a dictionary, paths with parameters in priority order.
struct PathTable<Value: Sendable>: Sendable {
    private var exact: [String: Value] = [:]
    private var patterns: [(pattern: PathPattern, value: Value)] = []

    /// A path that matched a request's path.
    struct Match {
        /// The path as registered.
        var route: String
        var parameters: [String: String]
        var value: Value
    }

    /// The value registered at exactly `path`.
    func value(at path: String) -> Value? {
        exact[path] ?? patterns.first { $0.pattern.text == path }?.value
    }

    /// Sets the value at `path` from the current one (nil when none).
    mutating func set(_ path: String, _ update: (Value?) -> Value) {
        let pattern = PathPattern(path)
        guard pattern.hasParameters else {
            exact[path] = update(exact[path])
            return
        }
        if let index = patterns.firstIndex(where: { $0.pattern.text == path }) {
            patterns[index].value = update(patterns[index].value)
            return
        }
        let value = update(nil)
        let index = patterns.firstIndex { pattern.precedes($0.pattern) } ?? patterns.endIndex
        patterns.insert((pattern, value), at: index)
    }

    /// Every registered path that matches `path`, in priority order: the exact one first.
    func matches(_ path: String) -> [Match] {
        var result: [Match] = []
        if let value = exact[path] { result.append(Match(route: path, parameters: [:], value: value)) }
        guard !patterns.isEmpty else { return result }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        for (pattern, value) in patterns {
            if let parameters = pattern.match(parts) {
                result.append(Match(route: pattern.text, parameters: parameters, value: value))
            }
        }
        return result
    }

    /// Every registered path with its value.
    var all: [(path: String, value: Value)] {
        exact.map { ($0.key, $0.value) } + patterns.map { ($0.pattern.text, $0.value) }
    }
}
