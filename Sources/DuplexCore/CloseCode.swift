/// A WebSocket close status code (RFC 6455 §7.4, IANA "WebSocket Close Code Number Registry").
public struct CloseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The code as sent on the wire, 0...65535 (the valid ones are 1000...4999, see ``isValidOnWire``).
    public let rawValue: UInt16
    /// A code from its number, without checking it (``isValidOnWire`` tells whether it may be sent).
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// A code from its number, without checking it: `CloseCode(4000)` for an application's own code.
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    /// 1000: the purpose of the connection has been fulfilled.
    public static let normalClosure = CloseCode(1000)
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    public static let goingAway = CloseCode(1001)
    /// 1002: protocol error.
    public static let protocolError = CloseCode(1002)
    /// 1003: a data type the endpoint cannot accept.
    public static let unsupportedData = CloseCode(1003)
    /// 1005: no status code was present. Never sent on the wire.
    public static let noStatusReceived = CloseCode(1005)
    /// 1006: the connection closed without a close frame. Never sent on the wire.
    public static let abnormalClosure = CloseCode(1006)
    /// 1007: data inconsistent with the message type (invalid UTF-8 in a text message).
    public static let invalidPayloadData = CloseCode(1007)
    /// 1008: a message violates the endpoint's policy.
    public static let policyViolation = CloseCode(1008)
    /// 1009: a message is too big to process.
    public static let messageTooBig = CloseCode(1009)
    /// 1010: the client expected the server to negotiate an extension.
    public static let mandatoryExtension = CloseCode(1010)
    /// 1011: the server met an unexpected condition.
    public static let internalError = CloseCode(1011)
    /// 1012: the service is restarting (IANA).
    public static let serviceRestart = CloseCode(1012)
    /// 1013: try again later, e.g. the server is overloaded (IANA).
    public static let tryAgainLater = CloseCode(1013)
    /// 1014: a gateway or proxy got an invalid response upstream (IANA).
    public static let badGateway = CloseCode(1014)
    /// 1015: the TLS handshake failed. Never sent on the wire.
    public static let tlsHandshakeFailure = CloseCode(1015)

    /// Whether the code may appear in a close frame, sent or received.
    ///
    /// Valid: 1000-1003, 1007-1014 (1012-1014 are registered with IANA after RFC 6455), and
    /// 3000-4999 (libraries, frameworks and applications). Invalid: below 1000, 1004 (reserved),
    /// 1005, 1006 and 1015 (never on the wire), 1016-2999 (reserved for future RFCs and
    /// extensions, unassigned), and 5000 and above.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    /// The number and, for a registered code, its name: `1000 (normal closure)`.
    public var description: String {
        let name: String? = switch rawValue {
        case 1000: "normal closure"
        case 1001: "going away"
        case 1002: "protocol error"
        case 1003: "unsupported data"
        case 1005: "no status received"
        case 1006: "abnormal closure"
        case 1007: "invalid payload data"
        case 1008: "policy violation"
        case 1009: "message too big"
        case 1010: "mandatory extension"
        case 1011: "internal error"
        case 1012: "service restart"
        case 1013: "try again later"
        case 1014: "bad gateway"
        case 1015: "TLS handshake failure"
        default: nil
        }
        return name.map { "\(rawValue) (\($0))" } ?? "\(rawValue)"
    }
}
