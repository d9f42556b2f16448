import Duplex
import DuplexCore
import NIOCore
import NIOPosix
import Testing

/// The opt-in reconnecting sequence.
@Suite struct ClientReconnectTests {
    static let fastPolicy = ReconnectPolicy(initialDelay: .milliseconds(20), maxDelay: .milliseconds(200), jitter: 0.5)

    static func echo(_ ws: WebSocketConnection, _ text: String) async throws {
        try await ws.send(text: text)
        var messages = ws.messages.makeAsyncIterator()
        #expect(try await messages.next() == .text(text))
    }

    @Test func reconnectsAfterTheServerRestarts() async throws {
        let (first, port) = try await startClientTestServer()
        let restarted = try await withTimeLimit(20) { () -> WebSocketServer in
            let connections = try WebSocketConnection.reconnecting(to: "ws://127.0.0.1:\(port)/echo",
                                                         configuration: loopbackClientConfiguration(), policy: Self.fastPolicy)
            var iterator = connections.makeAsyncIterator()
            let one = try #require(try await iterator.next())
            try await Self.echo(one, "first life")

            // The server goes away (1001 to every connection), and comes back on the same port a
            // little later: the sequence retries with backoff meanwhile.
            await first.shutdown(gracePeriod: .seconds(2))
            #expect(await one.waitForClose().code == .goingAway)
            let comeback = Task {
                try await Task.sleep(for: .milliseconds(300))
                return try await startClientTestServer(port: port).server
            }
            do {
                let two = try #require(try await iterator.next())
                #expect(two !== one)
                try await Self.echo(two, "second life")
                // The first connection's close stays observable.
                #expect(one.closeCode == .goingAway)
                #expect(two.closeFrame == nil)
                _ = try await two.close()
            } catch {
                await (try? await comeback.value)?.shutdown(gracePeriod: .zero)
                throw error
            }
            return try await comeback.value
        }
        await restarted.shutdown(gracePeriod: .zero)
    }

    @Test func yieldsANewConnectionAfterEveryClose() async throws {
        try await withClientTestServer { port in
            try await withTimeLimit {
                var count = 0
                var codes: [CloseCode?] = []
                for try await ws in try WebSocketConnection.reconnecting(to: "ws://127.0.0.1:\(port)/close?code=4000",
                                                               configuration: loopbackClientConfiguration(), policy: Self.fastPolicy) {
                    count += 1
                    codes.append(await ws.waitForClose().code)
                    if count == 3 { break }
                }
                #expect(codes == [CloseCode(4000), CloseCode(4000), CloseCode(4000)])
            }
        }
    }

    @Test func givesUpAfterMaxAttempts() async throws {
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(probe.localAddress?.port)
        try await probe.close()
        var limited = Self.fastPolicy
        limited.maxAttempts = 3
        let policy = limited
        let started = ContinuousClock.now
        try await withTimeLimit {
            var iterator = try WebSocketConnection.reconnecting(to: "ws://127.0.0.1:\(port)/", configuration: loopbackClientConfiguration(),
                                                      policy: policy).makeAsyncIterator()
            await #expect(throws: (any Error).self) { _ = try await iterator.next() }
            // Finished: no more connections.
            #expect(try await iterator.next() == nil)
        }
        // Two waits of at least 10 and 20 ms happened between the three attempts.
        #expect(ContinuousClock.now - started >= .milliseconds(30))
    }

    @Test func permanentErrorsAreNotRetried() async throws {
        // A 404 is retried by default (a restarting server may answer so); this policy says no.
        var picky = Self.fastPolicy
        picky.shouldRetry = { error in
            if case .handshakeFailed(.unexpectedStatus(let status, _)) = error as? WebSocketError { return status.code >= 500 }
            return true
        }
        let policy = picky
        try await withClientTestServer { port in
            try await withTimeLimit {
                var iterator = try WebSocketConnection.reconnecting(to: "ws://127.0.0.1:\(port)/missing", configuration: loopbackClientConfiguration(),
                                                          policy: policy).makeAsyncIterator()
                do {
                    _ = try await iterator.next()
                    Issue.record("connected to a missing endpoint")
                } catch WebSocketError.handshakeFailed(.unexpectedStatus(let status, _)) {
                    #expect(status == 404)
                }
            }
        }
        #expect(throws: WebSocketError.self) { _ = try WebSocketConnection.reconnecting(to: "http://example.com/") }
    }

    @Test func cancellingTheLoopClosesTheConnection() async throws {
        try await withClientTestServer { port in
            let opened = AsyncStream<WebSocketConnection>.makeStream()
            let loop = Task {
                for try await ws in try WebSocketConnection.reconnecting(to: "ws://127.0.0.1:\(port)/echo",
                                                               configuration: loopbackClientConfiguration(), policy: Self.fastPolicy) {
                    opened.continuation.yield(ws)
                }
            }
            try await withTimeLimit {
                var iterator = opened.stream.makeAsyncIterator()
                let ws = try #require(await iterator.next())
                loop.cancel()
                try await loop.value
                #expect(await ws.waitForClose().code == .goingAway)
            }
        }
    }
}
