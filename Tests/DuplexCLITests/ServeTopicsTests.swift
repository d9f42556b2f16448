import Duplex
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
@testable import DuplexCLI

/// `duplex serve`'s topics: `/topics/NAME`, `POST /publish/NAME`, `GET /topics`, the ticker,
/// with the routes `duplex serve` mounts, in-process.
@Suite struct ServeTopicsTests {
    @Test(arguments: [("ticker", true), ("chat.lobby", true), ("a:b-c_d.e", true), (String(repeating: "x", count: 128), true),
                      ("", false), (String(repeating: "x", count: 129), false), ("bad name", false), ("bad/name", false),
                      ("é", false), ("bad!", false)])
    func topicNames(name: String, valid: Bool) {
        #expect(TopicRoutes.isValidName(name) == valid)
    }

    /// A server with `duplex serve`'s routes on a free port.
    static func withServe(_ body: (Int, WebSocketServer) async throws -> Void) async throws {
        let reference = ServerReference()
        var logger = Logger(label: "duplex.test")
        logger.logLevel = .critical
        let server = WebSocketServer(
            configuration: .init(host: "127.0.0.1", port: 0, webSocket: WebSocketConfiguration(pingInterval: nil)),
            router: Serve.router(server: reference), group: MultiThreadedEventLoopGroup.singleton, logger: logger
        )
        reference.set(server)
        let port = try #require(try await server.start().port)
        do {
            try await body(port, server)
        } catch {
            await server.shutdown(gracePeriod: .milliseconds(100))
            throw error
        }
        await server.shutdown(gracePeriod: .milliseconds(100))
    }

    @Test func theTickerPublishesPricesAsJSON() async throws {
        try await Self.withServe { port, server in
            let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/topics/ticker")
            while server.subscriberCount(of: "ticker") == 0 { try await Task.sleep(for: .milliseconds(5)) }
            let ticker = Task { try await TickerService(server: server, interval: .milliseconds(20)).run() }
            defer { ticker.cancel() }
            var iterator = ws.messages.makeAsyncIterator()
            var prices: [[String: Double]] = []
            for _ in 0..<3 {
                guard case .text(let text)? = try await iterator.next() else { Issue.record("no ticker message"); return }
                let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
                #expect(json["type"] as? String == "ticker")
                #expect((json["time"] as? Int).map { abs(Double($0) / 1000 - Date().timeIntervalSince1970) < 60 } == true)
                let quotes = try #require(json["prices"] as? [[String: Any]])
                #expect(quotes.count == 5)
                prices.append(Dictionary(uniqueKeysWithValues: quotes.map { ($0["symbol"] as! String, $0["price"] as! Double) }))
            }
            #expect(prices[0].keys.sorted() == ["DPLX", "NIO", "RFC", "SWFT", "WSKT"])
            _ = try await ws.close()
        }
    }

    @Test func pythonWebsocketsClientsSubscribeAndPublish() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let venv = try await Self.run("/bin/bash", [root.appendingPathComponent("scripts/interop-venv.sh").path], in: root)
        let python = try #require(venv.output.split(separator: "\n").last.map(String.init))
        try await Self.withServe { port, _ in
            let script = root.appendingPathComponent("Tests/Interop/websockets_topics_check.py").path
            let outcome = try await Self.run(python, [script, "http://127.0.0.1:\(port)"], in: root)
            #expect(outcome.status == 0, "\(outcome.output)")
            #expect(outcome.output.contains("RESULT: OK"), "\(outcome.output)")
        }
    }

    /// Runs a process to its end (bounded by the script's own timeouts) and returns its status and
    /// output. The blocking reads and the wait run on a thread of their own: on a cooperative
    /// thread (two of them on a 2-core machine) they would stall every other test's tasks.
    static func run(_ executable: String, _ arguments: [String], in directory: URL) async throws -> (status: Int32, output: String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = arguments
                process.currentDirectoryURL = directory
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = pipe
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                continuation.resume(returning: (process.terminationStatus, String(decoding: data, as: UTF8.self)))
            }.start()
        }
    }
}
