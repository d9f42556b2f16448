import Duplex
import Foundation
import NIOCore
import NIOPosix
import Testing

/// `duplex serve --metrics`: Prometheus text at `/metrics` with what the library emitted through
/// swift-metrics. Run as a process: swift-metrics takes one backend per process.
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
        #expect(text.lowercased().contains("content-type: text/plain; version=0.0.4"), "\(text)")
        for expected in [
            "duplex_connections_opened_total{role=\"server\"} 2",
            "duplex_connections_active{role=\"server\"} 0",
            "duplex_closes_total{role=\"server\",code=\"1000\"} 2",
            "duplex_messages_received_total{role=\"server\"} 3",
            "duplex_handshake_refusals_total{status=\"404\"} 1",
            "duplex_publishes_total{subscribers=\"1\"} 1",
            "duplex_publish_deliveries_total 1",
            "duplex_upgrade_duration_seconds_count 2",
        ] {
            #expect(text.contains(expected), "no \(expected) in \(text)")
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
