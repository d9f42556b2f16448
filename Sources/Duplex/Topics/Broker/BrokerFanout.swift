import DuplexCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// Fan-out of a server's topics across server instances through a ``PubSubBroker``.
///
/// - The server's subscriber counts drive the broker: a topic's first local subscriber subscribes
///   this instance to it at the broker, its last one leaving unsubscribes it, so an instance gets
///   only the topics it has subscribers for.
/// - Every publish on the server (``WebSocketServer/publish(_:to:)-(WebSocketMessage,_)``, a connection's `publish`)
///   is delivered locally at once, as without a broker, and sent to the broker; a message from the
///   broker is delivered to the local subscribers, unless this instance published it (every
///   message carries its publisher's ``node``).
/// - Order: one publisher's messages to one topic arrive in publish order on every instance (one
///   queue to one broker session, which keeps its order).
/// - Faults: when the session is lost, local delivery goes on; the fan-out makes a new session
///   with jittered, capped backoff (``Configuration/reconnect``), subscribes it again to every
///   topic with local subscribers, and logs each step. Delivery across instances is
///   **at-most-once**: what is published while the broker is away (or beyond
///   ``Configuration/maxPendingPublishes`` waiting) does not reach the other instances, and a
///   subscriber that has just subscribed may miss what the broker delivers before its
///   subscription there is made.
///
/// Use: make it with the server before starting either, call ``start()`` (it fails with a clear
/// ``BrokerError`` when the broker is wrong or unreachable), then run it (it is a `Service`) beside
/// the server until shutdown.
public final class BrokerFanout: Service, Sendable {
    /// Limits and timings of a ``BrokerFanout``.
    public struct Configuration: Sendable {
        /// Local publishes held while they wait for the broker; more are dropped. Default: 10,000.
        public var maxPendingPublishes: Int
        /// The waits between attempts to make a new session. Default: 100 ms doubling to 2 s,
        /// half of each wait random.
        public var reconnect: ReconnectPolicy
        /// How often the session is pinged (the round-trip metric, and how a dead broker is
        /// noticed). Default: 5 s.
        public var pingInterval: TimeAmount
        /// A ping without an answer this long ends the session. Default: 5 s.
        public var pingTimeout: TimeAmount

        /// A configuration; every setting has a default (see each property). `maxPendingPublishes`, the
        /// ping interval and the ping timeout must be positive (a precondition).
        public init(maxPendingPublishes: Int = 10_000,
                    reconnect: ReconnectPolicy = ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(2),
                                                                 resetAfter: .seconds(10)),
                    pingInterval: TimeAmount = .seconds(5), pingTimeout: TimeAmount = .seconds(5)) {
            precondition(maxPendingPublishes > 0, "maxPendingPublishes must be positive")
            precondition(pingInterval > .zero && pingTimeout > .zero, "ping interval and timeout must be positive")
            self.maxPendingPublishes = maxPendingPublishes
            self.reconnect = reconnect
            self.pingInterval = pingInterval
            self.pingTimeout = pingTimeout
        }
    }

    /// Where the fan-out is with its broker.
    public enum State: Sendable, Equatable, CustomStringConvertible {
        /// Not started.
        case idle
        /// A session is up: publishes go across instances.
        case connected
        /// The session was lost; `attempt` new ones failed so far, the last with `lastError`.
        case reconnecting(attempt: Int, lastError: String)
        /// Shut down.
        case stopped

        /// `idle`, `connected`, `reconnecting (attempt N): ERROR` or `stopped`, as `/healthz` shows it.
        public var description: String {
            switch self {
            case .idle: "idle"
            case .connected: "connected"
            case .reconnecting(let attempt, let lastError): "reconnecting (attempt \(attempt): \(lastError))"
            case .stopped: "stopped"
            }
        }
    }

    /// This instance's identity at the broker.
    public let node: BrokerNodeID
    /// The broker.
    public let broker: any PubSubBroker
    private let configuration: Configuration
    private let registry: TopicRegistry
    private let outbox: BrokerOutbox
    private let metrics: BrokerMetrics
    private let logger: Logger
    private let status = NIOLockedValueBox<Status>(Status())

    private struct Status {
        var state: State = .idle
        var roundTrip: Duration?
        var firstSession: (any PubSubBrokerSession)?
    }

    /// A fan-out of `server`'s topics through `broker`; it takes effect at ``start()``.
    public init(broker: any PubSubBroker, server: WebSocketServer, node: BrokerNodeID = BrokerNodeID(),
                configuration: Configuration = Configuration(), logger: Logger = Logger(label: "duplex.broker")) {
        self.node = node
        self.broker = broker
        self.configuration = configuration
        self.registry = server.context.topics
        self.outbox = BrokerOutbox(limit: configuration.maxPendingPublishes, wanted: Set(server.context.topics.counts.keys))
        self.metrics = BrokerMetrics(kind: broker.kind)
        var logger = logger
        logger[metadataKey: "broker"] = "\(broker.redactedDescription)"
        self.logger = logger
    }

    /// Where the fan-out is with its broker.
    public var state: State { status.withLockedValue { $0.state } }

    /// The last round trip to the broker (the periodic ping), nil before the first.
    public var roundTripTime: Duration? { status.withLockedValue { $0.roundTrip } }

    /// Makes the first session and starts relaying the server's topics.
    /// - Throws: ``BrokerError`` when the broker is wrong or unreachable (no retry: a wrong URL at
    ///   start is a configuration error).
    public func start() async throws {
        let session = try await connect()
        status.withLockedValue {
            $0.firstSession = session
            $0.state = .connected
        }
        outbox.setSessionUp(true)
        // Reseed: topics may have gained subscribers between init and now.
        for topic in registry.counts.keys { outbox.topic(topic, subscribed: true) }
        registry.setRelay(self)
        metrics.connected.record(1)
        logger.info("broker connected", metadata: ["node": "\(node)"])
    }

    /// Relays until graceful shutdown or cancellation, making new sessions when one is lost
    /// (it calls ``start()`` first if that was not done).
    public func run() async throws {
        if status.withLockedValue({ $0.state }) == .idle { try await start() }
        guard var session = status.withLockedValue({ state in defer { state.firstSession = nil }; return state.firstSession })
        else { return }
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                while true {
                    guard let lost = await relay(through: session) else { break }
                    await session.close()
                    guard let next = await reconnect(after: lost) else { break }
                    session = next
                }
                await session.close()
            } onCancel: {
                outbox.stop()
            }
        } onGracefulShutdown: {
            self.outbox.stop()
        }
        finish()
    }

    /// Stops relaying (as a graceful shutdown does): ``run()`` returns.
    public func stop() {
        outbox.stop()
    }

    private func finish() {
        registry.setRelay(nil)
        status.withLockedValue { $0.state = .stopped }
        metrics.connected.record(0)
        logger.info("broker fan-out stopped")
    }

    private func connect() async throws -> any PubSubBrokerSession {
        try await broker.connect(
            onMessage: { [weak self] message in self?.received(message) },
            onClose: { [weak self] error in self?.outbox.sessionEnded(error) }
        )
    }

    /// Runs one session: subscriptions, publishes and pings. Returns why it ended, nil on stop.
    private func relay(through session: any PubSubBrokerSession) async -> (any Error)? {
        await withTaskGroup(of: (any Error)?.self) { group in
            group.addTask { await self.ping(session) }
            group.addTask { await self.work(session) }
            let reason = await group.next() ?? nil
            group.cancelAll()
            if let reason { outbox.sessionEnded(reason) }  // stops the worker when the ping ended the session
            return reason
        }
    }

    private func work(_ session: any PubSubBrokerSession) async -> (any Error)? {
        var subscribed: Set<String> = []
        while true {
            let work = await outbox.next()
            if work.stopped { return nil }
            if let ended = work.sessionEnded { return ended }
            do {
                if let wanted = work.wantedTopics {
                    let added = wanted.subtracting(subscribed), removed = subscribed.subtracting(wanted)
                    if !added.isEmpty { try await session.subscribe(to: added.sorted()) }
                    if !removed.isEmpty { try await session.unsubscribe(from: removed.sorted()) }
                    subscribed = wanted
                }
                if !work.publishes.isEmpty {
                    try await session.publish(work.publishes)
                    metrics.published.increment(by: work.publishes.count)
                }
            } catch {
                return error
            }
        }
    }

    private func ping(_ session: any PubSubBrokerSession) async -> (any Error)? {
        let clock = ContinuousClock()
        while true {
            do {
                try await Task.sleep(for: .nanoseconds(configuration.pingInterval.nanoseconds))
            } catch {
                return nil  // cancelled: the worker ended
            }
            let started = clock.now
            do {
                try await withBrokerTimeout(configuration.pingTimeout) { try await session.ping() }
            } catch is CancellationError {
                return nil
            } catch {
                return error
            }
            let elapsed = clock.now - started
            metrics.roundTrip.recordNanoseconds(Int64(elapsed.components.seconds) * 1_000_000_000
                                                + Int64(elapsed.components.attoseconds / 1_000_000_000))
            status.withLockedValue { $0.roundTrip = elapsed }
        }
    }

    /// New sessions until one is up (subscribed again by the worker's first turn); nil on stop.
    private func reconnect(after lost: any Error) async -> (any PubSubBrokerSession)? {
        outbox.setSessionUp(false)
        metrics.connected.record(0)
        logger.warning("broker session lost; local delivery goes on, messages across instances are lost until it is back",
                       metadata: ["error": "\(lost)"])
        var attempt = 0
        while true {
            status.withLockedValue { $0.state = .reconnecting(attempt: attempt, lastError: "\(lost)") }
            do {
                try await Task.sleep(for: .nanoseconds(configuration.reconnect.delay(attempt: attempt).nanoseconds))
            } catch {
                return nil
            }
            if outbox.isStopped { return nil }
            do {
                let session = try await connect()
                outbox.setSessionUp(true)
                status.withLockedValue { $0.state = .connected }
                metrics.connected.record(1)
                metrics.reconnects.increment()
                logger.notice("broker session made again; subscribing to every topic with local subscribers",
                              metadata: ["attempts": "\(attempt + 1)", "topics": "\(registry.counts.count)"])
                return session
            } catch {
                attempt += 1
                status.withLockedValue { $0.state = .reconnecting(attempt: attempt, lastError: "\(error)") }
                logger.warning("broker reconnect failed", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
            }
        }
    }

    private func received(_ message: BrokerMessage) {
        guard message.origin != node else { return }
        metrics.received.increment()
        registry.deliver(SharedFrame(opcode: message.isText ? .text : .binary, payload: message.payload), to: message.topic)
    }
}

extension BrokerFanout: TopicRelay {
    func topicTransition(_ transition: TopicTransition) {
        switch transition {
        case .firstSubscriber(let topic): outbox.topic(topic, subscribed: true)
        case .lastSubscriberLeft(let topic): outbox.topic(topic, subscribed: false)
        }
    }

    func published(_ frame: SharedFrame, to topic: String) {
        let message = BrokerMessage(topic: topic, origin: node, isText: frame.opcode == .text, payload: frame.payload)
        if !outbox.publish(message) { metrics.dropped.increment() }
    }
}

