import DuplexCore
import Logging
import NIOCore
import NIOPosix

/// When and how often a ``ReconnectingWebSocket`` tries again: exponential backoff with jitter
/// and a cap.
///
/// The n-th wait (n = 0, 1, 2, ...) is `min(maxDelay, initialDelay * multiplier^n)`, of which
/// the fraction ``jitter`` is random: the wait is drawn uniformly from
/// `[delay * (1 - jitter), delay]`, so clients that lost the same server do not all come back
/// at once. The count goes on across connections that close quickly (a server that accepts and
/// drops at once is not hammered) and starts again after a connection that stayed open for
/// ``resetAfter``.
public struct ReconnectPolicy: Sendable {
    /// The first wait: before the first retry, and before reconnecting after a close. Default: 0.5 s.
    public var initialDelay: TimeAmount
    /// The longest wait. Default: 30 s.
    public var maxDelay: TimeAmount
    /// Growth of the wait from one attempt to the next. Default: 2.
    public var multiplier: Double
    /// The random fraction of each wait, 0...1. Default: 0.5.
    public var jitter: Double
    /// Failed attempts in a row after which the sequence throws the last error; nil never gives up.
    /// Default: nil.
    public var maxAttempts: Int?
    /// A connection open at least this long starts the backoff over. Default: 30 s.
    public var resetAfter: TimeAmount
    /// Whether an error is worth another attempt. Default: every error but an invalid URL or proxy
    /// setting and cancellation.
    public var shouldRetry: @Sendable (any Error) -> Bool

    /// A policy; the defaults wait 0.5 s, then twice as long each time up to 30 s, half of each wait
    /// random, and never give up. Delays must satisfy `0 <= initialDelay <= maxDelay`, `multiplier`
    /// be at least 1, `jitter` within 0...1 and `maxAttempts` positive (a precondition).
    public init(
        initialDelay: TimeAmount = .milliseconds(500),
        maxDelay: TimeAmount = .seconds(30),
        multiplier: Double = 2,
        jitter: Double = 0.5,
        maxAttempts: Int? = nil,
        resetAfter: TimeAmount = .seconds(30),
        shouldRetry: @escaping @Sendable (any Error) -> Bool = ReconnectPolicy.retryUnlessPermanent
    ) {
        precondition(initialDelay >= .zero && maxDelay >= initialDelay, "delays must satisfy 0 <= initialDelay <= maxDelay")
        precondition(multiplier >= 1, "multiplier must be at least 1")
        precondition((0...1).contains(jitter), "jitter must be within 0...1")
        precondition(maxAttempts.map { $0 > 0 } ?? true, "maxAttempts must be positive")
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
        self.jitter = jitter
        self.maxAttempts = maxAttempts
        self.resetAfter = resetAfter
        self.shouldRetry = shouldRetry
    }

    /// The default ``shouldRetry``: false for ``WebSocketError/invalidURL(_:)`` (a bad URL or proxy
    /// variable does not get better) and for `CancellationError`, true for anything else.
    public static let retryUnlessPermanent: @Sendable (any Error) -> Bool = { error in
        if error is CancellationError { return false }
        if case .invalidURL = error as? WebSocketError { return false }
        return true
    }

    /// The cap of the n-th wait, before jitter.
    public func baseDelay(attempt: Int) -> TimeAmount {
        let initial = Double(initialDelay.nanoseconds)
        let cap = Double(maxDelay.nanoseconds)
        var delay = initial
        var n = 0
        while n < attempt && delay < cap {
            delay *= multiplier
            n += 1
        }
        return .nanoseconds(Int64(min(delay, cap)))
    }

    /// The n-th wait, with jitter.
    public func delay(attempt: Int) -> TimeAmount {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }

    /// The n-th wait, with jitter drawn from `generator`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> TimeAmount {
        let base = Double(baseDelay(attempt: attempt).nanoseconds)
        let random = jitter > 0 ? Double.random(in: 0...jitter, using: &generator) : 0
        return .nanoseconds(Int64(base * (1 - random)))
    }
}

extension WebSocketConnection {
    /// Connections to `url` that come back after they close: an async sequence that yields a new
    /// ``WebSocketConnection`` each time the previous one closed, retrying failed attempts with the
    /// backoff of `policy`.
    ///
    /// ```swift
    /// for try await ws in try WebSocketConnection.reconnecting(to: "wss://example.com/feed") {
    ///     do {
    ///         for try await message in ws.messages { handle(message) }
    ///     } catch {
    ///         // the connection failed or dropped
    ///     }
    ///     print("closed with", ws.closeCode!)   // every close stays visible
    /// }
    /// ```
    ///
    /// Nothing is hidden: each connection is its own ``WebSocketConnection`` with its own
    /// ``WebSocketConnection/closeFrame``. The sequence waits for the previous connection to close before it
    /// connects again; stop by leaving the loop. Cancelling the iterating task while it waits
    /// closes the open connection (1001) and ends the sequence. It throws when an attempt fails
    /// with an error ``ReconnectPolicy/shouldRetry`` refuses or after
    /// ``ReconnectPolicy/maxAttempts`` failures in a row.
    /// - Throws: ``WebSocketError/invalidURL(_:)`` for a URL that is not ws/wss.
    public static func reconnecting(
        to url: String,
        configuration: WebSocketClientConfiguration = WebSocketClientConfiguration(),
        policy: ReconnectPolicy = ReconnectPolicy(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "duplex.client")
    ) throws(WebSocketError) -> ReconnectingWebSocket {
        reconnecting(to: try WebSocketURL(url), configuration: configuration, policy: policy, group: group, logger: logger)
    }

    /// Reconnecting connections to a parsed URL; see the overload that takes a `String`.
    public static func reconnecting(
        to url: WebSocketURL,
        configuration: WebSocketClientConfiguration = WebSocketClientConfiguration(),
        policy: ReconnectPolicy = ReconnectPolicy(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "duplex.client")
    ) -> ReconnectingWebSocket {
        ReconnectingWebSocket(url: url, configuration: configuration, policy: policy, group: group, logger: logger)
    }
}

/// The async sequence of `WebSocketConnection.reconnecting(to:...)`:
/// one open connection after another.
public struct ReconnectingWebSocket: AsyncSequence, Sendable {
    /// Each element is an open connection.
    public typealias Element = WebSocketConnection

    /// Where every connection goes.
    public let url: WebSocketURL
    /// The configuration every connection is opened with.
    public let configuration: WebSocketClientConfiguration
    /// When and how often a failed or closed connection is tried again.
    public let policy: ReconnectPolicy
    let group: any EventLoopGroup
    let logger: Logger

    /// An iterator that opens the first connection on its first `next()`.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(sequence: self) }

    /// Connects on each `next()`, after the previous connection closed.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let sequence: ReconnectingWebSocket
        var previous: WebSocketConnection?
        var openedAt = NIODeadline.now()
        /// Index of the next backoff wait.
        var backoff = 0
        var finished = false

        init(sequence: ReconnectingWebSocket) { self.sequence = sequence }

        /// The next open connection; nil once the iterating task is cancelled.
        public mutating func next() async throws -> WebSocketConnection? {
            guard !finished else { return nil }
            let policy = sequence.policy
            var needsDelay = false
            if let previous {
                await Self.waitForClose(previous)
                self.previous = nil
                if Task.isCancelled {
                    finished = true
                    return nil
                }
                if NIODeadline.now() - openedAt >= policy.resetAfter { backoff = 0 }
                sequence.logger.debug("connection closed; reconnecting", metadata: ["close": "\(previous.closeFrame.map { "\($0)" } ?? "?")"])
                needsDelay = true
            }
            var failures = 0
            while true {
                if needsDelay {
                    let wait = policy.delay(attempt: backoff)
                    backoff += 1
                    do {
                        try await Task.sleep(nanoseconds: UInt64(Swift.max(wait.nanoseconds, 0)))
                    } catch {
                        finished = true
                        return nil
                    }
                }
                needsDelay = true
                do {
                    let ws = try await WebSocketConnection.connect(
                        to: sequence.url, configuration: sequence.configuration, group: sequence.group, logger: sequence.logger
                    )
                    previous = ws
                    openedAt = .now()
                    return ws
                } catch {
                    if Task.isCancelled || error is CancellationError {
                        finished = true
                        return nil
                    }
                    failures += 1
                    let giveUp = !policy.shouldRetry(error) || policy.maxAttempts.map { failures >= $0 } ?? false
                    sequence.logger.info(giveUp ? "connect failed; giving up" : "connect failed; retrying",
                                         metadata: ["error": "\(error)", "attempt": "\(failures)"])
                    if giveUp {
                        finished = true
                        throw error
                    }
                }
            }
        }

        /// Waits until `ws` closed; if the task is cancelled meanwhile, closes it with 1001.
        static func waitForClose(_ ws: WebSocketConnection) async {
            await withTaskCancellationHandler {
                _ = await ws.waitForClose()
            } onCancel: {
                ws.startClose(code: .goingAway)
            }
        }
    }
}
