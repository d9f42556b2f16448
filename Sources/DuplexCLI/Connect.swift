import ArgumentParser
import Duplex
import Foundation
import Logging
import NIOCore
import NIOSSL

/// `duplex connect URL`: an interactive client, like wscat or websocat.
struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to a WebSocket server: send each line of stdin, print each message received.",
        discussion: """
            Each line read from stdin is sent as a text message (--binary: a binary message). \
            Received text messages are printed as they are, binary ones in hex (--base64: in base64). \
            At the end of stdin, or on Ctrl-C, the connection is closed with 1000 and the command waits \
            for the server's close (a second Ctrl-C quits at once). The close code and reason are \
            printed to stderr.

            On a terminal (or with --slash) lines starting with / are commands: /ping [TEXT] sends a \
            ping and prints the round trip, /close [CODE [REASON]] closes, /help lists them, and \
            //TEXT sends /TEXT. --show-control (-P) prints pings and pongs received.

            Exit status: 0 after a close with 1000 (normal) or 1001 (going away), or after the closing \
            handshake of a /close with any code; 1 when the \
            connection could not be opened (handshake, TLS, proxy, network); 2 after any other close \
            (an error code, or 1006 when the connection dropped without a close frame).
            """
    )

    @Argument(help: "The ws:// or wss:// URL to connect to.") var url: String
    @Flag(name: [.short, .long], help: "Send each line as a binary message instead of text.") var binary = false
    @Flag(help: "Print received binary messages in base64 instead of hex.") var base64 = false
    @Option(name: [.customShort("s"), .customLong("subprotocol")],
            help: "A subprotocol to offer (repeatable, most preferred first).")
    var subprotocols: [String] = []
    @Option(name: [.customShort("H"), .customLong("header")], help: "An extra request header, 'Name: value' (repeatable).")
    var headers: [String] = []
    @Option(name: [.short, .long], help: "The Origin header to send.") var origin: String?
    @Flag(name: [.customShort("k"), .long], help: "Accept any server certificate, self-signed included (development only).")
    var insecure = false
    @Option(name: .customLong("ca"), help: "A PEM file of CA certificates to trust instead of the system's.")
    var caFile: String?
    @Option(name: .customLong("cert"), help: "A PEM file with a client certificate (chain) for mutual TLS; needs --key.")
    var certFile: String?
    @Option(name: .customLong("key"), help: "The PEM private key of --cert.") var keyFile: String?
    @Flag(name: [.customShort("P"), .long], help: "Print pings and pongs received (to stderr).") var showControl = false
    @Flag(help: "Read lines starting with / as commands (/ping, /close CODE REASON, /help) even when stdin is not a terminal.")
    var slash = false
    @Flag(help: "Send lines starting with / as messages even on a terminal.") var noSlash = false
    @Option(help: "Seconds between keepalive pings (0 turns them off).") var pingInterval = 30.0
    @Option(help: "An HTTP proxy URL (default: from http_proxy / https_proxy, honouring no_proxy).") var proxy: String?
    @Flag(help: "Connect directly, ignoring the proxy variables.") var noProxy = false
    @Flag(inversion: .prefixedNo, help: "Offer permessage-deflate compression (RFC 7692).") var deflate = true
    @Option(help: "Seconds allowed for connecting and the opening handshake.") var handshakeTimeout = 10.0
    @Option(help: "Seconds to wait for the server's close after sending ours.") var closeTimeout = 5.0
    @Option(help: "Largest message in bytes to accept (close 1009 over it).") var maxMessageSize = Limits.default.maxMessageSize
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "warning"

    func validate() throws {
        for header in headers where Self.field(header) == nil {
            throw ValidationError("--header must look like 'Name: value' with a valid field name, not '\(header)'")
        }
        guard pingInterval >= 0, handshakeTimeout > 0, closeTimeout > 0 else {
            throw ValidationError("times must be positive (--ping-interval may be 0)")
        }
        guard maxMessageSize > 0 else { throw ValidationError("--max-message-size must be positive") }
        guard !(noProxy && proxy != nil) else { throw ValidationError("--proxy and --no-proxy exclude each other") }
        guard !(slash && noSlash) else { throw ValidationError("--slash and --no-slash exclude each other") }
        guard (certFile == nil) == (keyFile == nil) else { throw ValidationError("--cert and --key go together") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
    }

    /// A `--header` value, `Name: value`, as a field; nil when it has no colon or no valid name.
    static func field(_ header: String) -> HTTPField? {
        guard let colon = header.firstIndex(of: ":"),
              let name = HTTPField.Name(header[..<colon].trimmingCharacters(in: .whitespaces)) else { return nil }
        return HTTPField(name: name, value: header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }

    func makeConfiguration() throws -> WebSocketClientConfiguration {
        var configuration = WebSocketClientConfiguration()
        configuration.subprotocols = subprotocols
        for header in headers {
            configuration.headerFields.append(Self.field(header)!)
        }
        configuration.origin = origin
        if !deflate { configuration.extensions = [] }
        configuration.handshakeTimeout = .seconds(handshakeTimeout)
        configuration.webSocket.pingInterval = pingInterval > 0 ? .seconds(pingInterval) : nil
        configuration.webSocket.closeTimeout = .seconds(closeTimeout)
        configuration.webSocket.limits = Limits(maxFrameSize: maxMessageSize, maxMessageSize: maxMessageSize)
        if let caFile { configuration.tls.trustRoots = .file(caFile) }
        if insecure { configuration.tls.certificateVerification = .none }
        if let certFile, let keyFile {
            do {
                configuration.tls.clientCertificate = (
                    try NIOSSLCertificate.fromPEMFile(certFile), try NIOSSLPrivateKey(file: keyFile, format: .pem)
                )
            } catch {
                throw ValidationError("cannot read the client certificate \(certFile) or key \(keyFile): \(error)")
            }
        }
        if showControl {
            configuration.webSocket.onControlFrame = { frame in
                switch frame {
                case .ping(let payload): Self.printError("< ping \(Self.describe(payload))")
                case .pong(let payload): Self.printError("< pong \(Self.describe(payload))")
                }
            }
        }
        if noProxy {
            configuration.proxy = .none
        } else if let proxy {
            configuration.proxy = .http(try HTTPProxy(url: proxy))
        }
        return configuration
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let ws: WebSocketConnection
        do {
            ws = try await WebSocketConnection.connect(to: url, configuration: makeConfiguration())
        } catch {
            Self.printError("duplex connect: \(url): \(error)")
            throw ExitCode(1)
        }
        Self.printError("duplex connect: connected to \(url)" + (ws.subprotocol.map { " (subprotocol \($0))" } ?? ""))

        let lines = StdinLines.start()
        let binary = self.binary
        let slashCommands = slash || (!noSlash && isatty(STDIN_FILENO) == 1)
        let interrupts = InterruptWatch.start {
            Self.printError("duplex connect: closing (Ctrl-C again quits at once)")
            Task { _ = try? await ws.close(code: .normalClosure) }
        }
        defer { interrupts.stop() }
        // Stdin to the server, until stdin ends (then close with 1000), a /close, or the connection closes.
        // Its value: whether the close came from a /close command (the user's choice of code).
        let sender = Task { () -> Bool in
            for await line in lines {
                let input = ConnectInput.parse(line, slashCommands: slashCommands)
                do {
                    switch input {
                    case .message(let bytes):
                        if binary { try await ws.send(binary: bytes) } else { try await ws.send(text: String(decoding: bytes, as: UTF8.self)) }
                    case .ping(let payload):
                        let roundTrip = try await ws.ping(payload.map { ByteBuffer(bytes: $0) } ?? WebSocketConnection.nextPingPayload())
                        Self.printError("pong after \(Self.milliseconds(roundTrip)) ms")
                    case .close(let code, let reason):
                        _ = try await ws.close(code: code, reason: reason)
                        return true
                    case .help:
                        Self.printError(ConnectInput.commandList)
                    case .invalid(let why):
                        Self.printError(why)
                    }
                } catch WebSocketError.pingTimeout {
                    Self.printError("no pong within the pong timeout")
                } catch {
                    return false  // closed under us
                }
            }
            if !Task.isCancelled { _ = try? await ws.close(code: .normalClosure) }
            return false
        }
        // The server to stdout, until the connection closes: after our close at the end of stdin,
        // or the server's own. Then stop reading stdin.
        do {
            for try await message in ws.messages { Self.output(message, base64: base64) }
        } catch {
            // The connection failed or dropped: the close code below says how.
        }
        sender.cancel()
        let closedByCommand = await sender.value
        let close = await ws.waitForClose()
        Self.printError("duplex connect: closed: \(close)")
        let clean = close.code == .normalClosure || close.code == .goingAway || (closedByCommand && close.code != .abnormalClosure)
        if !clean { throw ExitCode(2) }
    }

    /// A control frame's payload as text when it is printable UTF-8, else in hex.
    static func describe(_ payload: ByteBuffer) -> String {
        let bytes = Array(payload.readableBytesView)
        if bytes.isEmpty { return "(empty)" }
        if let text = String(validating: bytes, as: UTF8.self), text.unicodeScalars.allSatisfy({ !$0.properties.isDefaultIgnorableCodePoint && $0.value >= 0x20 }) {
            return "\"\(text)\""
        }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// A duration in milliseconds with two decimals.
    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(format: "%.2f", Double(seconds) * 1000 + Double(attoseconds) / 1e15)
    }

    static func output(_ message: WebSocketMessage, base64: Bool) {
        switch message {
        case .text(let text):
            print(text)
        case .binary(let bytes):
            let data = Data(bytes.readableBytesView)
            print(base64 ? data.base64EncodedString() : data.map { String(format: "%02x", $0) }.joined())
        }
        fflush(nil)  // every message shows at once, in a pipe too
    }

    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
