/// One element of a `Sec-WebSocket-Extensions` header: a name and its parameters
/// (RFC 6455 §9.1), e.g. `permessage-deflate; client_max_window_bits; server_max_window_bits=10`.
public struct ExtensionOffer: Sendable, Hashable, CustomStringConvertible {
    /// One parameter of an extension offer or response: `server_max_window_bits=10`, or a name alone.
    public struct Parameter: Sendable, Hashable {
        /// The parameter's name, a token (e.g. `client_max_window_bits`).
        public var name: String
        /// The value, unquoted; nil for a parameter without `=`.
        public var value: String?
        /// A parameter; `value` nil for one written without `=`.
        public init(name: String, value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    /// The extension's name, a token (e.g. `permessage-deflate`).
    public var name: String
    /// The parameters in the order they were written.
    public var parameters: [Parameter]

    /// An offer (or a response) of the extension `name` with `parameters`.
    public init(name: String, parameters: [Parameter] = []) {
        self.name = name
        self.parameters = parameters
    }

    /// The header form of this element.
    public var description: String {
        var result = name
        for parameter in parameters {
            result += "; " + parameter.name
            if let value = parameter.value {
                result += "=" + (HTTPToken.isToken(value) ? value : "\"" + value + "\"")
            }
        }
        return result
    }

    /// Parses the values of all `Sec-WebSocket-Extensions` headers of a message, in order.
    ///
    /// Grammar (RFC 6455 §9.1): `extension *( "," extension )`, `extension = token *( ";" param )`,
    /// `param = token [ "=" ( token / quoted-string ) ]`, where a quoted value must itself be a
    /// token after unquoting. Empty list elements are ignored (RFC 7230 §7).
    public static func parse(_ headerValues: [String]) throws(HandshakeError) -> [ExtensionOffer] {
        var offers: [ExtensionOffer] = []
        for value in headerValues {
            var scanner = HeaderScanner(value)
            while true {
                scanner.skipWhitespace()
                if scanner.atEnd { break }
                if scanner.consume(",") { continue }
                guard let name = scanner.token() else { throw HandshakeError.malformedExtensions(value) }
                var offer = ExtensionOffer(name: name)
                scanner.skipWhitespace()
                while scanner.consume(";") {
                    scanner.skipWhitespace()
                    guard let parameterName = scanner.token() else { throw HandshakeError.malformedExtensions(value) }
                    scanner.skipWhitespace()
                    var parameterValue: String? = nil
                    if scanner.consume("=") {
                        scanner.skipWhitespace()
                        if let quoted = scanner.quotedString() {
                            guard HTTPToken.isToken(quoted) else { throw HandshakeError.malformedExtensions(value) }
                            parameterValue = quoted
                        } else if let token = scanner.token() {
                            parameterValue = token
                        } else {
                            throw HandshakeError.malformedExtensions(value)
                        }
                        scanner.skipWhitespace()
                    }
                    offer.parameters.append(Parameter(name: parameterName, value: parameterValue))
                }
                offers.append(offer)
                scanner.skipWhitespace()
                if scanner.atEnd { break }
                guard scanner.consume(",") else { throw HandshakeError.malformedExtensions(value) }
            }
        }
        return offers
    }

    /// The header value for a list of elements.
    public static func serialize(_ offers: [ExtensionOffer]) -> String {
        offers.map(\.description).joined(separator: ", ")
    }
}

/// RFC 7230 §3.2.6 token characters.
enum HTTPToken {
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    static func isToken(_ string: String) -> Bool {
        !string.isEmpty && string.utf8.allSatisfy(isTokenByte)
    }
}

/// A small cursor over a header value's bytes.
struct HeaderScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ string: String) { bytes = Array(string.utf8) }

    var atEnd: Bool { index >= bytes.count }

    mutating func skipWhitespace() {
        while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index += 1 }
    }

    mutating func consume(_ character: Character) -> Bool {
        guard index < bytes.count, let ascii = character.asciiValue, bytes[index] == ascii else { return false }
        index += 1
        return true
    }

    mutating func token() -> String? {
        let start = index
        while index < bytes.count, HTTPToken.isTokenByte(bytes[index]) { index += 1 }
        return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
    }

    /// A quoted-string with backslash escapes; nil (and nothing consumed) if not at a quote.
    mutating func quotedString() -> String? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        var i = index + 1
        var out: [UInt8] = []
        while i < bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") {
                index = i + 1
                return String(decoding: out, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\") {
                i += 1
                guard i < bytes.count else { return nil }
            }
            out.append(bytes[i])
            i += 1
        }
        return nil  // unterminated
    }
}
