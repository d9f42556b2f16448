import NIOCore

/// A publish/subscribe engine that carries a server's topics to the other server instances
/// (Redis, PostgreSQL, or ``InProcessBroker``): the seam behind ``BrokerFanout``.
///
/// A broker makes sessions; ``BrokerFanout`` holds one at a time, subscribes it to the topics
/// this server has subscribers for, publishes every local publish through it, and makes a new
/// session (with backoff) when one ends.
public protocol PubSubBroker: Sendable {
    /// The kind of broker, a metric dimension: `redis`, `postgres`, `in-process`.
    var kind: String { get }

    /// Where the broker is, for logs and `/healthz`: never with a password in it.
    var redactedDescription: String { get }

    /// Opens a session: connects, authenticates, and is ready to subscribe and publish.
    ///
    /// `onMessage` is called for every message of a subscribed topic, in the order the broker
    /// delivers them, one at a time; it returns at once. `onClose` is called once, when the session
    /// ends for any reason other than ``PubSubBrokerSession/close()``.
    /// - Throws: ``BrokerError`` with what went wrong (unreachable, refused, authentication).
    func connect(
        onMessage: @escaping @Sendable (BrokerMessage) -> Void,
        onClose: @escaping @Sendable (any Error) -> Void
    ) async throws -> any PubSubBrokerSession
}

/// One connection (or a few) to a broker, made by ``PubSubBroker/connect(onMessage:onClose:)``.
public protocol PubSubBrokerSession: Sendable {
    /// Subscribes this session to `topics`: their messages go to `onMessage` from now on.
    func subscribe(to topics: [String]) async throws
    /// Unsubscribes this session from `topics`.
    func unsubscribe(from topics: [String]) async throws
    /// Publishes `messages` in their order (pipelined where the broker can); returns once the broker
    /// has taken them all.
    func publish(_ messages: [BrokerMessage]) async throws
    /// One round trip to the broker.
    func ping() async throws
    /// Ends the session; `onClose` is not called.
    func close() async
}

/// A message on its way to or from a broker: the topic, the publishing server's node, and the
/// WebSocket message (text or binary).
public struct BrokerMessage: Sendable, Equatable {
    /// The topic it was published to.
    public var topic: String
    /// The server instance that published it (its ``BrokerFanout/node``).
    public var origin: BrokerNodeID
    /// Whether it is a text message (valid UTF-8); binary otherwise.
    public var isText: Bool
    /// The message's payload.
    public var payload: ByteBuffer

    /// A message of `topic` published by `origin`.
    public init(topic: String, origin: BrokerNodeID, isText: Bool, payload: ByteBuffer) {
        self.topic = topic
        self.origin = origin
        self.isText = isText
        self.payload = payload
    }
}

/// The identity of one server instance at the broker: 16 random bytes, made at start. Every
/// message carries its publisher's, so an instance drops its own messages when they come back.
public struct BrokerNodeID: Sendable, Hashable, CustomStringConvertible {
    /// The 16 bytes.
    public let bytes: [UInt8]

    /// A new random identity.
    public init() {
        var generator = SystemRandomNumberGenerator()
        bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// An identity from its 16 bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        self.bytes = Array(bytes)
    }

    /// An identity from its 32 lowercase or uppercase hex digits (its ``description``).
    public init?(hex: some StringProtocol) {
        let digits = Array(hex.utf8)
        guard digits.count == 32 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for index in stride(from: 0, to: 32, by: 2) {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.bytes = bytes
    }

    /// 32 lowercase hex digits.
    public var description: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(32)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Why a broker could not be used.
public struct BrokerError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, for a person: names the broker (without credentials) and the cause.
    public let message: String

    /// An error saying `message`.
    public init(_ message: String) {
        self.message = message
    }

    /// ``message``.
    public var description: String { message }
}
