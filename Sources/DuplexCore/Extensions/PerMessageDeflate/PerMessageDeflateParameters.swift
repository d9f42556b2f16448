/// The parameters of one permessage-deflate offer or response (RFC 7692 §7.1).
public struct PerMessageDeflateParameters: Sendable, Hashable {
    /// `server_no_context_takeover`: the server resets its compression context after each message.
    public var serverNoContextTakeover = false
    /// `client_no_context_takeover`: the client resets its compression context after each message.
    public var clientNoContextTakeover = false
    /// `server_max_window_bits=N` (8...15): the largest LZ77 window the server's compressor may use.
    public var serverMaxWindowBits: Int?
    /// `client_max_window_bits[=N]`: in an offer, the client can limit its window (nil value:
    /// the parameter without a value); in a response, the client's window limit.
    public var clientMaxWindowBits: ClientWindowBits?

    /// The value of `client_max_window_bits`, which may be written without one.
    public enum ClientWindowBits: Sendable, Hashable {
        /// `client_max_window_bits` without a value (offers only): "tell me a limit if you want".
        case supported
        /// `client_max_window_bits=N`.
        case bits(Int)
    }

    /// Parameters; each is absent unless given.
    public init(serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false,
                serverMaxWindowBits: Int? = nil, clientMaxWindowBits: ClientWindowBits? = nil) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// Why an element's parameters are not acceptable.
    public enum Invalid: Error, Hashable, CustomStringConvertible {
        /// A parameter RFC 7692 does not define.
        case unknown(String)
        /// A parameter given twice in one element.
        case duplicate(String)
        /// A parameter's value (nil: missing) outside what it allows, e.g. window bits outside 8...15 or with a leading zero.
        case badValue(String, String?)

        /// What is wrong, e.g. `unknown parameter x_foo`.
        public var description: String {
            switch self {
            case .unknown(let name): "unknown parameter \(name)"
            case .duplicate(let name): "duplicate parameter \(name)"
            case .badValue(let name, let value): "invalid value \(value.map { "'\($0)'" } ?? "(none)") for \(name)"
            }
        }
    }

    /// Parses an element's parameters. Unknown or duplicate parameters and bad values are
    /// invalid (§7.1: the server declines such an offer; a client fails on such a response).
    /// - Parameters:
    ///   - element: one `permessage-deflate` element of an offer or a response.
    ///   - isResponse: in a response, `client_max_window_bits` needs a value.
    public static func parse(_ element: ExtensionOffer, isResponse: Bool) throws(Invalid) -> PerMessageDeflateParameters {
        var result = PerMessageDeflateParameters()
        var seen: Set<String> = []
        for parameter in element.parameters {
            let name = parameter.name.lowercased()
            guard seen.insert(name).inserted else { throw Invalid.duplicate(name) }
            switch name {
            case "server_no_context_takeover":
                guard parameter.value == nil else { throw Invalid.badValue(name, parameter.value) }
                result.serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard parameter.value == nil else { throw Invalid.badValue(name, parameter.value) }
                result.clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let bits = windowBits(parameter.value) else { throw Invalid.badValue(name, parameter.value) }
                result.serverMaxWindowBits = bits
            case "client_max_window_bits":
                if let value = parameter.value {
                    guard let bits = windowBits(value) else { throw Invalid.badValue(name, value) }
                    result.clientMaxWindowBits = .bits(bits)
                } else {
                    guard !isResponse else { throw Invalid.badValue(name, nil) }
                    result.clientMaxWindowBits = .supported
                }
            default:
                throw Invalid.unknown(parameter.name)
            }
        }
        return result
    }

    /// A window-bits value: decimal 8...15, digits only (`1*DIGIT`, so no sign: `Int("+9")` would
    /// read `+9`), without leading zeros (RFC 7692 §7.1.2).
    static func windowBits(_ value: String?) -> Int? {
        guard let value, let first = value.utf8.first, first != UInt8(ascii: "0"),
              value.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              let bits = Int(value), (8...15).contains(bits) else { return nil }
        return bits
    }

    /// The header element for these parameters.
    public var element: ExtensionOffer {
        var parameters: [ExtensionOffer.Parameter] = []
        if serverNoContextTakeover { parameters.append(.init(name: "server_no_context_takeover")) }
        if clientNoContextTakeover { parameters.append(.init(name: "client_no_context_takeover")) }
        if let bits = serverMaxWindowBits { parameters.append(.init(name: "server_max_window_bits", value: "\(bits)")) }
        switch clientMaxWindowBits {
        case .supported: parameters.append(.init(name: "client_max_window_bits"))
        case .bits(let bits): parameters.append(.init(name: "client_max_window_bits", value: "\(bits)"))
        case nil: break
        }
        return ExtensionOffer(name: PerMessageDeflate.name, parameters: parameters)
    }
}
