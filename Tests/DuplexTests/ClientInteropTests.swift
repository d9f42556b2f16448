import Duplex
import DuplexCore
import Foundation
import NIOCore
import Testing

/// The client against a server on Python's `websockets` 17.4 (Tests/Interop/websockets_echo_server.py,
/// in the venv that scripts/interop-venv.sh makes).
@Suite struct ClientInteropTests {
    /// The repository's root.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A running Python server; closing its stdin stops it.
    final class PythonServer: Sendable {
        let process: Process
        let stdin: FileHandle
        let port: Int

        init(process: Process, stdin: FileHandle, port: Int) {
            self.process = process
            self.stdin = stdin
            self.port = port
        }

        static func start(arguments: [String] = []) async throws -> PythonServer {
            let python = try await run(root.appendingPathComponent("scripts/interop-venv.sh").path)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [root.appendingPathComponent("Tests/Interop/websockets_echo_server.py").path] + arguments
            let input = Pipe(), output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            let line = try await withTimeLimit(30, "the Python server's port") {
                try await firstLine(of: output.fileHandleForReading)
            }
            guard let port = Int(line.trimmingCharacters(in: .whitespaces)) else {
                process.terminate()
                throw ClientTestFailure("the Python server printed '\(line)' instead of its port")
            }
            return PythonServer(process: process, stdin: input.fileHandleForWriting, port: port)
        }

        func stop() {
            try? stdin.close()
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }

        /// Runs a command and returns its standard output, trimmed.
        static func run(_ path: String) async throws -> String {
            try await withCheckedThrowingContinuation { continuation in
                let thread = Thread {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: path)
                    let output = Pipe()
                    process.standardOutput = output
                    do {
                        try process.run()
                        let data = output.fileHandleForReading.readDataToEndOfFile()
                        process.waitUntilExit()
                        guard process.terminationStatus == 0 else {
                            throw ClientTestFailure("\(path) exited with \(process.terminationStatus)")
                        }
                        continuation.resume(returning: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.start()
            }
        }

        /// The first line a pipe delivers, read on a thread of its own (the read blocks).
        static func firstLine(of handle: FileHandle) async throws -> String {
            try await withCheckedThrowingContinuation { continuation in
                let thread = Thread {
                    var bytes: [UInt8] = []
                    while true {
                        let data = handle.readData(ofLength: 1)
                        guard let byte = data.first else {
                            continuation.resume(throwing: ClientTestFailure("the Python server ended before printing its port"))
                            return
                        }
                        if byte == UInt8(ascii: "\n") { break }
                        bytes.append(byte)
                    }
                    continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
                }
                thread.start()
            }
        }
    }

    static func withPythonServer(arguments: [String] = [], _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        let server = try await PythonServer.start(arguments: arguments)
        defer { server.stop() }
        try await withTimeLimit(30) { try await body(server.port) }
    }

    /// The first message of a fresh connection to `url`.
    static func firstMessage(_ url: String, configuration: WebSocketClientConfiguration = loopbackClientConfiguration()) async throws -> WebSocketMessage? {
        let ws = try await WebSocketConnection.connect(to: url, configuration: configuration)
        var messages = ws.messages.makeAsyncIterator()
        let message = try await messages.next()
        _ = try? await ws.close()
        return message
    }

    @Test func echoSubprotocolsHeadersAndCloseCodes() async throws {
        try await Self.withPythonServer { port in
            let base = "ws://127.0.0.1:\(port)"

            // Echo: text, binary, large and fragmented messages.
            var fragmenting = loopbackClientConfiguration()
            fragmenting.webSocket.fragmentSize = 4096
            let ws = try await WebSocketConnection.connect(to: "\(base)/echo?id=swift", configuration: fragmenting)
            var messages = ws.messages.makeAsyncIterator()
            try await ws.send(text: "hello from Duplex ✓")
            #expect(try await messages.next() == .text("hello from Duplex ✓"))
            let bytes = (0..<1_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try await ws.send(binary: bytes)
            #expect(try await messages.next() == .binary(ByteBuffer(bytes: bytes)))
            for i in 0..<100 { try await ws.send(text: "n\(i)") }
            for i in 0..<100 { #expect(try await messages.next() == .text("n\(i)")) }
            try await ws.ping(ByteBuffer(string: "are you there"))

            // Our close code reaches websockets, and its echo comes back.
            let close = try await ws.close(code: CloseCode(4002), reason: "done here")
            #expect(close.code == CloseCode(4002))
            #expect(try await Self.firstMessage("\(base)/closed?id=swift") == .text("4002 done here"))

            // websockets' close codes reach us.
            for (code, reason) in [(1000, "bye"), (1001, "away"), (1011, "broken"), (4444, "custom")] {
                let closing = try await WebSocketConnection.connect(to: "\(base)/close?code=\(code)&reason=\(reason)",
                                                          configuration: loopbackClientConfiguration())
                for try await message in closing.messages { Issue.record("unexpected \(message)") }
                let frame = await closing.waitForClose()
                #expect(frame.code == CloseCode(UInt16(code)))
                #expect(frame.reason == reason)
            }

            // Subprotocol negotiation and extra headers.
            var headers = HTTPFields()
            headers.add(name: "X-Test", value: "seen")
            let offering = loopbackClientConfiguration(subprotocols: ["chat.v3", "chat.v1"], headers: headers, origin: "https://duplex.test")
            let info = try await WebSocketConnection.connect(to: "\(base)/info", configuration: offering)
            #expect(info.subprotocol == "chat.v1")
            var infoMessages = info.messages.makeAsyncIterator()
            // The client offers permessage-deflate by default and websockets accepts it.
            #expect(try await infoMessages.next() == .text("chat.v1|https://duplex.test|seen|permessage-deflate"))
            _ = try await info.close()
            var offeringNone = loopbackClientConfiguration()
            offeringNone.extensions = []
            #expect(try await Self.firstMessage("\(base)/info", configuration: offeringNone) == .text("|||"))
        }
    }

    @Test func permessageDeflateWithPython() async throws {
        try await Self.withPythonServer { port in
            var configuration = loopbackClientConfiguration()
            configuration.extensions = [PerMessageDeflate.ClientNegotiator()]
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/info", configuration: configuration)
            var messages = ws.messages.makeAsyncIterator()
            #expect(try await messages.next() == .text("|||permessage-deflate"))
            let text = String(repeating: "compressible text, again and again. ", count: 25_000)  // 900 KB, under the 1 MiB default
            for _ in 0..<3 {
                try await ws.send(text: text)
                #expect(try await messages.next() == .text(text))
            }
            let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
            try await ws.send(binary: bytes)
            #expect(try await messages.next() == .binary(ByteBuffer(bytes: bytes)))
            #expect(try await ws.close().code == .normalClosure)
        }
    }

    @Test func wssWithPython() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await Self.withPythonServer(arguments: ["--tls", certificate.certificatePath, certificate.keyPath]) { port in
            var configuration = loopbackClientConfiguration()
            configuration.tls.trustRoots = .file(certificate.certificatePath)
            let ws = try await WebSocketConnection.connect(to: "wss://localhost:\(port)/echo", configuration: configuration)
            try await ws.send(text: "tls interop")
            var messages = ws.messages.makeAsyncIterator()
            #expect(try await messages.next() == .text("tls interop"))
            #expect(try await ws.close().code == .normalClosure)
        }
    }
}
