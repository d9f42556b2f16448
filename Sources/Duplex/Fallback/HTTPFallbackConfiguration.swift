import NIOCore

/// Settings of the HTTP fallback transports of one WebSocket endpoint: Server-Sent Events (a
/// stream down, POSTs up) and long-polling (one held GET down, POSTs up), for clients whose
/// network does not let a WebSocket through. See docs/fallbacks.md for the URL scheme.
///
/// Every limit has a default; the message size limits and the backpressure settings are the
/// endpoint's ``WebSocketConfiguration`` (the same as for its WebSockets), and a POST's body is
/// bounded by ``WebSocketServer/Configuration/maxRequestBodyBytes`` (413 over it).
public struct HTTPFallbackConfiguration: Sendable {
    /// Serve SSE sessions at the endpoint. Default: true.
    public var eventStream: Bool
    /// Serve long-polling sessions at the endpoint. Default: true.
    public var longPolling: Bool
    /// A session with no request attached (no stream, no pending poll, no POST) for this long
    /// expires: its connection ends with 1006 and its id answers 404. Default: 30 s.
    public var sessionTimeout: TimeAmount
    /// An SSE stream that carried nothing for this long gets a comment line, so that proxies
    /// and the client see it alive. Default: 15 s.
    public var heartbeatInterval: TimeAmount
    /// A long-poll GET with nothing to carry is answered empty after this long. Default: 25 s.
    public var pollTimeout: TimeAmount
    /// How long a delivered message is kept for a client that reconnects with `Last-Event-ID`.
    /// Default: 30 s.
    public var replayTime: TimeAmount
    /// At most this many bytes of delivered messages are kept for replay (the oldest go first).
    /// Default: 1 MiB.
    public var replayBufferBytes: Int
    /// Sessions a server keeps at once (over it, opening one answers 503). Default: 100 000.
    public var maxSessions: Int
    /// A long poll's answer carries at most this many bytes of events (but always at least one
    /// event, however large). Default: 1 MiB.
    public var maxPollAnswerBytes: Int

    /// A configuration; every setting has a default (see each property).
    public init(eventStream: Bool = true, longPolling: Bool = true, sessionTimeout: TimeAmount = .seconds(30),
                heartbeatInterval: TimeAmount = .seconds(15), pollTimeout: TimeAmount = .seconds(25),
                replayTime: TimeAmount = .seconds(30), replayBufferBytes: Int = 1 << 20, maxSessions: Int = 100_000,
                maxPollAnswerBytes: Int = 1 << 20) {
        precondition(sessionTimeout.nanoseconds > 0 && heartbeatInterval.nanoseconds > 0 && pollTimeout.nanoseconds > 0,
                     "fallback timeouts must be positive")
        precondition(replayBufferBytes >= 0 && maxSessions > 0 && maxPollAnswerBytes > 0, "fallback limits must be positive")
        self.eventStream = eventStream
        self.longPolling = longPolling
        self.sessionTimeout = sessionTimeout
        self.heartbeatInterval = heartbeatInterval
        self.pollTimeout = pollTimeout
        self.replayTime = replayTime
        self.replayBufferBytes = replayBufferBytes
        self.maxSessions = maxSessions
        self.maxPollAnswerBytes = maxPollAnswerBytes
    }

    /// No fallback transports: the endpoint serves WebSockets only.
    public static let disabled = HTTPFallbackConfiguration(eventStream: false, longPolling: false)

    func allows(_ transport: FallbackTransport) -> Bool {
        switch transport {
        case .eventStream: eventStream
        case .longPolling: longPolling
        }
    }
}

/// The HTTP fallback transports.
enum FallbackTransport: String, Sendable {
    /// Server-Sent Events down, POSTs up.
    case eventStream = "sse"
    /// Held GETs down, POSTs up.
    case longPolling = "longpoll"
}
