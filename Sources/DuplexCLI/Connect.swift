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
            At the end of stdin the connection is closed with 1000 and the command waits for the \
            server's close. The close code and reason are printed to stderr.

            Exit status: 0 after a close with 1000 (normal) or 1001 (going away); 1 when the \
            connection could not be opened (handshake, TLS, proxy, network); 2 after any other close \
            (an error code, or 1006 when the connection dropped without a close frame).
            """
    )

    @Argument(help: "The ws:// or wss:// URL to connect to.") var url: String
    @Flag(help: "Send each line as a binary message instead of text.") var binary = false
    @Flag(help: "Print received binary messages in base64 instead of hex.") var base64 = false
    @Option(name: .customLong("subprotocol"), help: "A subprotocol to offer (repeatable, most preferred first).")
    var subprotocols: [String] = []
    @Option(name: .customLong("header"), help: "An extra request header, 'Name: value' (repeatable).")
    var headers: [String] = []
    @Option(help: "The Origin header to send.") var origin: String?
    @Flag(help: "Accept any server certificate, self-signed included (development only).") var insecure = false
    @Option(name: .customLong("ca"), help: "A PEM file of CA certificates to trust instead of the system's.")
    var caFile: String?
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
        let ws: WebSocket
        do {
            ws = try await WebSocket.connect(to: url, configuration: makeConfiguration())
        } catch {
            Self.printError("duplex connect: \(url): \(error)")
            throw ExitCode(1)
        }
        Self.printError("duplex connect: connected to \(url)" + (ws.subprotocol.map { " (subprotocol \($0))" } ?? ""))

        let lines = StdinLines.start()
        let binary = self.binary
        // Stdin to the server, until stdin ends (then close with 1000) or the connection closes.
        let sender = Task {
            for await line in lines {
                do {
                    if binary { try await ws.send(binary: line) } else { try await ws.send(text: String(decoding: line, as: UTF8.self)) }
                } catch {
                    return  // closed under us
                }
            }
            if !Task.isCancelled { _ = try? await ws.close(code: .normalClosure) }
        }
        // The server to stdout, until the connection closes: after our close at the end of stdin,
        // or the server's own. Then stop reading stdin.
        do {
            for try await message in ws.messages { Self.output(message, base64: base64) }
        } catch {
            // The connection failed or dropped: the close code below says how.
        }
        sender.cancel()
        let close = await ws.waitForClose()
        Self.printError("duplex connect: closed: \(close)")
        if close.code != .normalClosure && close.code != .goingAway { throw ExitCode(2) }
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

/// Lines of stdin as raw bytes (without the line break), read on a thread of their own so that
/// no event loop or cooperative thread ever blocks on the terminal or a pipe. The thread reads at
/// most `window` lines ahead of the consumer, so a large piped file is not loaded into memory.
struct StdinLines: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let stream: AsyncStream<[UInt8]>
    let window: DispatchSemaphore

    static func start(window: Int = 256) -> StdinLines {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let semaphore = DispatchSemaphore(value: window)
        let thread = Thread {
            // read(2) on the descriptor, split at newlines: raw bytes, whatever their encoding.
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            func emit(_ line: ArraySlice<UInt8>) {
                var bytes = Array(line)
                if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
                semaphore.wait()
                continuation.yield(bytes)
            }
            while true {
                let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                pending += chunk[0..<count]
                var start = 0
                while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    emit(pending[start..<newline])
                    start = newline + 1
                }
                pending.removeFirst(start)
            }
            if !pending.isEmpty { emit(pending[...]) }
            continuation.finish()
        }
        thread.start()
        return StdinLines(stream: stream, window: semaphore)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<[UInt8]>.AsyncIterator
        let window: DispatchSemaphore

        mutating func next() async -> [UInt8]? {
            guard let line = await base.next() else { return nil }
            window.signal()
            return line
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: stream.makeAsyncIterator(), window: window) }
}
