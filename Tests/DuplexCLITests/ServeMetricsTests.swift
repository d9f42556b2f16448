import Duplex
import Foundation
import NIOCore
import NIOPosix
import Testing

/// `duplex serve --metrics`: Prometheus text at `/metrics` with what the library emitted through
/// swift-metrics, scraped and parsed by the Prometheus project's Python client parser
/// (Tests/Interop/prometheus_scrape_check.py). Run as a process: swift-metrics takes one backend per process.
@Suite struct ServeMetricsTests {
    @Test func metricsCountConnectionsMessagesRefusalsAndPublishes() async throws {
        let serve = try DuplexProcess.run(["serve", "--port", "0", "--metrics", "--ticker-interval", "0", "--log-level", "error"])
        defer { serve.terminate() }
        try await serve.waitFor("/metrics", in: .standardOutput)
        let line = try #require(serve.standardOutput.split(separator: "\n").first { $0.contains("echo endpoint") })
        let port = try #require(line.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) })

        let ws = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/echo")
        try await ws.send(text: "one")
        try await ws.send(text: "two")
        var echoes = ws.messages.makeAsyncIterator()
        _ = try await echoes.next()
        _ = try await echoes.next()
        #expect(try await ws.close().code == .normalClosure)
        let subscriber = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/topics/news")
        try await subscriber.send(text: "hello")  // published to news: 1 subscriber, the sender
        var published = subscriber.messages.makeAsyncIterator()
        _ = try await published.next()
        _ = try await subscriber.close()
        do {
            _ = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(port)/nowhere")
            Issue.record("an upgrade to a path without an endpoint was accepted")
        } catch WebSocketError.handshakeFailed {}

        var text = ""
        for _ in 0..<100 {  // the close of the last connection is counted a moment after its close frame
            text = try await Self.get("/metrics", port: port)
            if text.contains("duplex_closes_total{role=\"server\",code=\"1000\"} 2") { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(text.hasPrefix("HTTP/1.1 200"), "\(text)")

        // Scraped again and read by the Prometheus project's own parser (prometheus_client).
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let venv = try await ServeTopicsTests.run("/bin/bash", [root.appendingPathComponent("scripts/interop-venv.sh").path], in: root)
        let python = try #require(venv.output.split(separator: "\n").last.map(String.init))
        let script = root.appendingPathComponent("Tests/Interop/prometheus_scrape_check.py").path
        let scrape = try await ServeTopicsTests.run(python, [script, "http://127.0.0.1:\(port)/metrics"], in: root)
        #expect(scrape.status == 0, "\(scrape.output)")
        #expect(scrape.output.contains("RESULT: OK"), "\(scrape.output)")
        let lines = scrape.output.split(separator: "\n")
        var samples: [String: Double] = [:]
        for line in lines where line.hasPrefix("sample ") {
            let fields = line.dropFirst("sample ".count).split(separator: " ")
            if fields.count == 2, let value = Double(fields[1]) { samples[String(fields[0])] = value }
        }
        let families = Set(lines.filter { $0.hasPrefix("family ") }.map { String($0.dropFirst("family ".count)) })
        let expected: [(sample: String, value: Double)] = [
            ("duplex_connections_opened_total{role=\"server\"}", 2),
            ("duplex_connections_active{role=\"server\"}", 0),
            ("duplex_closes_total{code=\"1000\",role=\"server\"}", 2),
            ("duplex_messages_received_total{role=\"server\"}", 3),
            ("duplex_handshake_refusals_total{status=\"404\"}", 1),
            ("duplex_publishes_total{subscribers=\"1\"}", 1),
            ("duplex_publish_deliveries_total{}", 1),
            ("duplex_upgrade_duration_seconds_count{}", 2),
        ]
        for (sample, value) in expected {
            let seen = samples[sample]
            #expect(seen == value, "\(sample): \(seen.map { "\($0)" } ?? "absent"), not \(value), in \(scrape.output)")
        }
        // Counters are counters (the parser names a counter's family without `_total`), the
        // upgrade latency a histogram, the open connections a gauge.
        for family in ["duplex_connections_opened counter", "duplex_closes counter", "duplex_connections_active gauge",
                       "duplex_upgrade_duration_seconds histogram"] {
            #expect(families.contains(family), "no family \(family) in \(scrape.output)")
        }
    }

    /// A GET over a plain TCP connection, the whole response as text.
    static func get(_ path: String, port: Int) async throws -> String {
        let collected = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await collected.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
            var response = ""
            for try await chunk in inbound { response += String(buffer: chunk) }
            return response
        }
    }
}
