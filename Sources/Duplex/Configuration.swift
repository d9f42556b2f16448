import DuplexCore
import NIOCore

/// Settings of one WebSocket connection, the same for servers and clients.
///
/// Every limit and timer has a default suited to a public-facing server; set any of them to
/// change it. The protocol core decides every time rule; the connection's event loop tells it the time.
public struct WebSocketConfiguration: Sendable {
    /// Frame and message size limits (default 1 MiB each; `Limits.large` for the 16 MiB of
    /// earlier versions). Over a limit: close 1009.
    public var limits: Limits
    /// Answer pings automatically. Default: true.
    public var autoPong: Bool
    /// Send a ping this often; nil turns keepalive pings off. Default: 30 s.
    public var pingInterval: TimeAmount?
    /// How long to wait for the pong to a keepalive ping. Default: 20 s.
    public var pongTimeout: TimeAmount
    /// What to do when the pong does not come.
    public var pongTimeoutAction: TimeoutAction
    /// Close a connection that received nothing for this long; nil turns it off. Default: nil
    /// (keepalive pings already detect dead peers).
    public var idleTimeout: TimeAmount?
    /// After this side sent its close frame (or, for a client, after the closing handshake),
    /// wait this long for the peer before closing the transport. Default: 5 s.
    public var closeTimeout: TimeAmount
    /// Outbound bytes buffered (not yet taken by the kernel) above which async `send` suspends
    /// and the callback API's `send` answers ``SendResult/buffered``. Default: 1 MiB.
    public var outboundHighWaterMark: Int
    /// Once writable again, sends resume when the buffered bytes fall under this. Default: 256 KiB.
    public var outboundLowWaterMark: Int
    /// Hard cap on buffered outbound bytes; a message (sent or published) whose frames would pass
    /// it, headers included (every fragment's; permessage-deflate's counted uncompressed), meets
    /// ``backpressurePolicy``. An empty buffer takes any message of up to this many payload bytes
    /// (so a message as large as the limit can be sent, with its headers over it); that and the
    /// policy's close frame are all that go over it. Default: 16 MiB.
    public var outboundHardLimit: Int
    /// What happens to a send past ``outboundHardLimit``.
    public var backpressurePolicy: BackpressurePolicy
    /// Received messages the async API holds for ``WebSocketConnection/messages`` before the connection
    /// may stop reading its socket. Default: 16.
    ///
    /// Past it, the connection keeps reading while the unread messages total less than
    /// ``inboundQueueBytes``, so that control frames are still processed while data messages
    /// wait: pings are answered, pongs satisfy the keepalive, a close frame completes the closing
    /// handshake. Reads stop once both are reached (TCP backpressure on the peer; its control
    /// frames then wait behind the unread messages, and a keepalive pong that waits there times
    /// the connection out) and resume when the application has read half of either. Unread
    /// messages are kept in order, never dropped, until the connection ends; those still unread
    /// when the handler returns are discarded. Worst case per connection:
    /// `max(inboundQueueSize × maxMessageSize, inboundQueueBytes + maxMessageSize)` bytes plus
    /// one socket read.
    public var inboundQueueSize: Int
    /// The bytes of unread messages (payload plus 64 bytes of bookkeeping
    /// each) up to which the connection keeps reading once ``inboundQueueSize`` messages
    /// wait. Default: 1 MiB.
    public var inboundQueueBytes: Int
    /// Split outgoing messages into frames of at most this many payload bytes; nil sends each
    /// message as one frame. Default: nil.
    public var fragmentSize: Int?
    /// Something to call for every ping and pong the connection receives, on the connection's
    /// event loop; nil (the default) calls nothing. Not an `init` parameter: set it on a value.
    ///
    /// For tools and diagnostics (`duplex connect --show-control` prints them): the connection
    /// answers pings and matches pongs to ``WebSocketConnection/ping(_:)`` by itself either way. The
    /// closure runs on the event loop, so it must not block.
    public var onControlFrame: (@Sendable (ReceivedControlFrame) -> Void)?

    /// What a connection does when the peer fails to answer a keepalive ping in time.
    public enum TimeoutAction: Sendable, Hashable {
        /// Start the closing handshake with this code (default 1011) and wait ``closeTimeout``.
        case close(CloseCode)
        /// Drop the TCP connection at once.
        case drop
    }

    /// What a send past the outbound hard limit does.
    public enum BackpressurePolicy: Sendable, Hashable {
        /// Drop the message and close the connection with this code (1008 policy violation or
        /// 1013 try again later).
        case close(CloseCode)
        /// Drop the message; the connection stays open.
        case drop
    }

    /// Settings; every one has a default (see each property). The water marks must satisfy
    /// `outboundLowWaterMark <= outboundHighWaterMark <= outboundHardLimit`, and the inbound queue
    /// limits must be positive (a precondition).
    public init(
        limits: Limits = .default,
        autoPong: Bool = true,
        pingInterval: TimeAmount? = .seconds(30),
        pongTimeout: TimeAmount = .seconds(20),
        pongTimeoutAction: TimeoutAction = .close(.internalError),
        idleTimeout: TimeAmount? = nil,
        closeTimeout: TimeAmount = .seconds(5),
        outboundHighWaterMark: Int = 1 << 20,
        outboundLowWaterMark: Int = 256 << 10,
        outboundHardLimit: Int = 16 << 20,
        backpressurePolicy: BackpressurePolicy = .close(.tryAgainLater),
        inboundQueueSize: Int = 16,
        inboundQueueBytes: Int = 1 << 20,
        fragmentSize: Int? = nil
    ) {
        precondition(outboundLowWaterMark <= outboundHighWaterMark && outboundHighWaterMark <= outboundHardLimit,
                     "water marks must satisfy low <= high <= hard limit")
        precondition(inboundQueueSize > 0 && inboundQueueBytes > 0, "inbound queue limits must be positive")
        self.limits = limits
        self.autoPong = autoPong
        self.pingInterval = pingInterval
        self.pongTimeout = pongTimeout
        self.pongTimeoutAction = pongTimeoutAction
        self.idleTimeout = idleTimeout
        self.closeTimeout = closeTimeout
        self.outboundHighWaterMark = outboundHighWaterMark
        self.outboundLowWaterMark = outboundLowWaterMark
        self.outboundHardLimit = outboundHardLimit
        self.backpressurePolicy = backpressurePolicy
        self.inboundQueueSize = inboundQueueSize
        self.inboundQueueBytes = inboundQueueBytes
        self.fragmentSize = fragmentSize
    }

    /// The protocol core's settings: the limits and every time rule (the core decides them).
    var core: Connection.Configuration {
        let action: Connection.PongTimeoutAction
        switch pongTimeoutAction {
        case .close(let code): action = .close(code)
        case .drop: action = .dropTransport
        }
        return Connection.Configuration(
            limits: limits, autoPong: autoPong, pingInterval: pingInterval.map(\.duration),
            pongTimeout: pongTimeout.duration, pongTimeoutAction: action,
            idleTimeout: idleTimeout.map(\.duration), closeTimeout: closeTimeout.duration
        )
    }
}

extension TimeAmount {
    /// The same span as a `Duration`.
    var duration: Duration { .nanoseconds(nanoseconds) }
}
