import HTTPTypes

/// What a plain HTTP request at a WebSocket endpoint's path asks of its fallback transports
/// (docs/fallbacks.md has the scheme):
///
/// | request at the endpoint's path | meaning |
/// | --- | --- |
/// | `POST ?transport=sse` or `?transport=longpoll` | open a session; answers `{"session": ID, ...}` |
/// | `GET ?transport=sse`, or `GET` with `Accept: text/event-stream` | open an SSE session and stream it at once (its first event names it) |
/// | `GET ?session=ID` | the session's events: its SSE stream, or one long poll; `Last-Event-ID` or `last=N` acknowledges and replays |
/// | `POST ?session=ID` | messages for the application (a body of events) |
struct FallbackRequest: Equatable {
    enum Kind: Equatable {
        case open(FallbackTransport)
        case openStream
        case events(session: String)
        case upstream(session: String)
    }

    var kind: Kind
    /// The last event the client has (`Last-Event-ID`, or `last=` in the query).
    var lastEventID: UInt64?

    /// A request classified: for a session, or refused with this answer.
    enum Classified {
        case fallback(FallbackRequest)
        case refused(RouteResponse)
    }

    /// nil when the request is not for a fallback transport (the endpoint answers it 426);
    /// refused with the answer to a malformed one.
    static func classify(_ request: RouteRequest) -> Classified? {
        var transport: String?, session: String?, last: String?
        for pair in (request.query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = parts.count > 1 ? String(parts[1]) : ""
            switch parts[0] {
            case "transport": transport = value
            case "session": session = value
            case "last": last = value
            default: continue
            }
        }
        let wantsStream = request.headerFields[.accept]?.lowercased().contains("text/event-stream") ?? false
        guard transport != nil || session != nil || wantsStream else { return nil }
        let lastText = request.headerFields[HTTPField.Name("Last-Event-ID")!] ?? last
        var lastEventID: UInt64?
        if let lastText, !lastText.isEmpty {
            guard let value = UInt64(lastText) else { return .refused(.text("Last-Event-ID must be an event id\n", status: .badRequest)) }
            lastEventID = value
        }
        if let session {
            guard SessionID.isWellFormed(session) else { return .refused(.text("no such session\n", status: .notFound)) }
            switch request.method {
            case .get: return .fallback(FallbackRequest(kind: .events(session: session), lastEventID: lastEventID))
            case .post: return .fallback(FallbackRequest(kind: .upstream(session: session), lastEventID: nil))
            default: return .refused(methodNotAllowed)
            }
        }
        let kind: FallbackTransport?
        switch transport {
        case nil: kind = .eventStream  // an `Accept: text/event-stream` GET
        case let name?: kind = FallbackTransport(rawValue: name)
        }
        guard let kind else {
            return .refused(.text("transport must be sse or longpoll\n", status: .badRequest))
        }
        switch (request.method, kind) {
        case (.post, _): return .fallback(FallbackRequest(kind: .open(kind), lastEventID: nil))
        case (.get, .eventStream): return .fallback(FallbackRequest(kind: .openStream, lastEventID: nil))
        case (.get, .longPolling):
            return .refused(.text("open a long-polling session with POST ?transport=longpoll\n", status: .badRequest))
        default: return .refused(methodNotAllowed)
        }
    }

    private static var methodNotAllowed: RouteResponse {
        var response = RouteResponse.text("fallback sessions take GET and POST\n", status: .methodNotAllowed)
        response.headerFields[.allow] = "GET, POST"
        return response
    }
}
