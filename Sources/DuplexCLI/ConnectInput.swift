import Duplex
import NIOCore

/// What one line of `duplex connect`'s input asks for. With slash commands on (`--slash`, or
/// stdin is a terminal) a line that starts with `/` is a command; `//` sends a line that starts
/// with `/`. Without them every line is a message.
enum ConnectInput: Equatable {
    /// Send this line as a message.
    case message([UInt8])
    /// `/ping [TEXT]`: send a ping (TEXT as its payload, else a fresh one) and print the round trip.
    case ping([UInt8]?)
    /// `/close [CODE [REASON]]`: start the closing handshake (default 1000, no reason).
    case close(CloseCode, String)
    /// `/help`: list the commands.
    case help
    /// A line that starts with `/` but is no command: nothing is sent; the text says why.
    case invalid(String)

    static let commandList = """
        commands: /ping [TEXT]  send a ping, print the round-trip time
                  /close [CODE [REASON]]  close the connection (default 1000)
                  /help  this list
                  //TEXT  send the message /TEXT
        """

    /// Reads one input line.
    static func parse(_ line: [UInt8], slashCommands: Bool) -> ConnectInput {
        guard slashCommands, line.first == UInt8(ascii: "/") else { return .message(line) }
        if line.dropFirst().first == UInt8(ascii: "/") { return .message(Array(line.dropFirst())) }
        let text = String(decoding: line.dropFirst(), as: UTF8.self)
        let name = text.prefix { $0 != " " }
        let rest = text.dropFirst(name.count).drop { $0 == " " }
        switch name {
        case "ping":
            guard rest.utf8.count <= 125 else { return .invalid("/ping: a ping's payload is at most 125 bytes") }
            return .ping(rest.isEmpty ? nil : Array(rest.utf8))
        case "close":
            guard !rest.isEmpty else { return .close(.normalClosure, "") }
            let codeText = rest.prefix { $0 != " " }
            let reason = String(rest.dropFirst(codeText.count).drop { $0 == " " })
            guard let raw = UInt16(codeText), CloseCode(raw).isValidOnWire else {
                return .invalid("/close: \(codeText) is not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)")
            }
            guard reason.utf8.count <= 123 else { return .invalid("/close: a close reason is at most 123 bytes") }
            return .close(CloseCode(raw), reason)
        case "help":
            return .help
        default:
            return .invalid("unknown command /\(name): /help lists them, //TEXT sends /TEXT")
        }
    }
}
