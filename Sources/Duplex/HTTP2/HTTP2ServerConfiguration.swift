import NIOCore

/// How a ``WebSocketServer`` speaks HTTP/2 (WebSockets as streams, RFC 8441, and plain routes).
///
/// Over TLS the server offers HTTP/2 when its TLS configuration lists `h2` among its ALPN
/// protocols (``NIOSSL/TLSConfiguration/duplexServer(certificatePath:privateKeyPath:http2:)``
/// does by default) and serves HTTP/1.1 on the same port to clients that do not pick it.
/// On a plain port HTTP/2 is spoken only with prior knowledge (h2c), and only when
/// ``priorKnowledgeCleartext`` is on: browsers never use h2c.
public struct HTTP2ServerConfiguration: Sendable, Hashable {
    /// Serve h2c with prior knowledge on a plain (non-TLS) port: a connection whose first bytes
    /// are the HTTP/2 preface speaks HTTP/2, any other HTTP/1.1. Default: false.
    public var priorKnowledgeCleartext: Bool
    /// Streams a client may have open at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`):
    /// one per WebSocket or request. Default: 256.
    public var maxConcurrentStreams: Int
    /// The flow-control window of each stream, in bytes (`SETTINGS_INITIAL_WINDOW_SIZE` and the
    /// window the server keeps open as it reads): how much a client may send on one WebSocket
    /// before the server has read it. Default: 65,535 (RFC 9113's initial window). A larger
    /// window lets one stream move more per round trip; a smaller one bounds what a stream whose
    /// application stopped reading holds in memory (see docs/http2.md). A WebSocket's outbound water marks
    /// (``WebSocketConfiguration/outboundHighWaterMark``) apply to its stream as to a TCP connection.
    public var streamWindowSize: Int
    /// How long an HTTP/2 connection may stay without open streams (no WebSocket, no request)
    /// before the server sends GOAWAY and closes it. Default: 60 s.
    public var idleConnectionTimeout: TimeAmount
    /// The largest header block (`SETTINGS_MAX_HEADER_LIST_SIZE`) a request may carry. Default: 16 KiB.
    public var maxHeaderListSize: Int

    /// A configuration; every setting has a default (see each property).
    public init(priorKnowledgeCleartext: Bool = false, maxConcurrentStreams: Int = 256, streamWindowSize: Int = 65_535,
                idleConnectionTimeout: TimeAmount = .seconds(60), maxHeaderListSize: Int = 16 * 1024) {
        self.idleConnectionTimeout = idleConnectionTimeout
        self.priorKnowledgeCleartext = priorKnowledgeCleartext
        self.maxConcurrentStreams = maxConcurrentStreams
        self.streamWindowSize = streamWindowSize
        self.maxHeaderListSize = maxHeaderListSize
    }
}
