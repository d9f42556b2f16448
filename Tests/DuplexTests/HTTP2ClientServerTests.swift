import Duplex
import DuplexCore
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

/// The Duplex client against the Duplex server over HTTP/2 (RFC 8441): many WebSockets as streams
/// of one TLS connection, failures that stay on their stream, shutdown, and the HTTP/1.1 fallback.
@Suite struct HTTP2ClientServerTests {
    /// A loop of their own for these servers and clients: 100 WebSockets in debug builds would
    /// otherwise hold up the timers of tests on the shared loops for seconds.
    static let loops: MultiThreadedEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    static func clientConfiguration(_ certificate: TestCertificate) -> WebSocketClientConfiguration {
        // A handshake timeout for a loaded machine (CI runs the suite in parallel).
        var configuration = loopbackClientConfiguration(handshakeTimeout: .seconds(20))
        configuration.tls = .init(trustRoots: .file(certificate.certificatePath))
        configuration.http2 = .preferred
        return configuration
    }

    static func router() -> WebSocketRouter {
        var router = WebSocketRouter()
        router.webSocket("/echo", asyncEcho(configuration: quietConfiguration(limits: Limits(maxFrameSize: 4096, maxMessageSize: 4096))))
        return router
    }

    @Test func hundredWebSocketsOverOneConnection() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await withServer(Self.router(), tls: try certificate.serverTLS(), group: Self.loops) { port, server in
            try await withTimeLimit(60) {
                let configuration = Self.clientConfiguration(certificate)
                let sockets = try await withThrowingTaskGroup(of: WebSocketConnection.self) { group in
                    for _ in 0..<100 {
                        group.addTask { try await WebSocketConnection.connect(to: "wss://localhost:\(port)/echo", configuration: configuration, group: Self.loops) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(sockets.count == 100)
                // One TCP connection carries all of them, as HTTP/2 streams.
                #expect(server.acceptedConnectionCount == 1)
                #expect(server.http2ConnectionCount == 1)
                #expect(server.webSocketsOpened(over: .h2) == 100)
                #expect(server.webSocketsOpened(over: .http1) == 0)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, ws) in sockets.enumerated() {
                        group.addTask {
                            try await ws.send(text: "hello \(index)")
                            var messages = ws.messages.makeAsyncIterator()
                            #expect(try await messages.next() == .text("hello \(index)"))
                        }
                    }
                    try await group.waitForAll()
                }

                // One stream fails (a message over the server's limit: 1009) and one closes; the others echo on.
                try await sockets[0].send(text: String(repeating: "x", count: 5000))
                #expect(await sockets[0].waitForClose().code == .messageTooBig)
                #expect(try await sockets[1].close().code == .normalClosure)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, ws) in sockets.enumerated().dropFirst(2) {
                        group.addTask {
                            try await ws.send(text: "again \(index)")
                            var messages = ws.messages.makeAsyncIterator()
                            #expect(try await messages.next() == .text("again \(index)"))
                        }
                    }
                    try await group.waitForAll()
                }
                #expect(server.acceptedConnectionCount == 1)

                // Shutdown: 1001 on every WebSocket still open.
                await server.shutdown(gracePeriod: .seconds(5))
                for ws in sockets.dropFirst(2) {
                    #expect(await ws.waitForClose().code == .goingAway)
                }
            }
        }
    }

    @Test func fallsBackToHTTP1WhenTheServerDoesNotOfferH2() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        let tls = try TLSConfiguration.duplexServer(certificatePath: certificate.certificatePath, privateKeyPath: certificate.keyPath,
                                                    http2: false)
        try await withServer(Self.router(), tls: tls, group: Self.loops) { port, server in
            try await withTimeLimit(30) {
                let configuration = Self.clientConfiguration(certificate)
                for round in 0..<2 {
                    let ws = try await WebSocketConnection.connect(to: "wss://localhost:\(port)/echo", configuration: configuration, group: Self.loops)
                    try await ws.send(text: "round \(round)")
                    var messages = ws.messages.makeAsyncIterator()
                    #expect(try await messages.next() == .text("round \(round)"))
                    #expect(try await ws.close().code == .normalClosure)
                }
                #expect(server.webSocketsOpened(over: .http1) == 2)
                #expect(server.webSocketsOpened(over: .h2) == 0)
                // The first attempt asked for h2 once; the origin is remembered as HTTP/1.1 only.
                #expect(server.acceptedConnectionCount == 3)
            }
        }
    }

    @Test func refusalIsAHandshakeErrorWithTheStatus() async throws {
        let certificate = try await TestCertificate.make()
        defer { certificate.remove() }
        try await withServer(Self.router(), tls: try certificate.serverTLS(), group: Self.loops) { port, server in
            try await withTimeLimit(30) {
                await #expect {
                    _ = try await WebSocketConnection.connect(to: "wss://localhost:\(port)/nope", configuration: Self.clientConfiguration(certificate), group: Self.loops)
                } throws: { error in
                    guard case WebSocketError.handshakeFailed(.unexpectedStatus(let status, _)) = error else { return false }
                    return status == .notFound
                }
                // The refusal ended its stream, not the connection: the next WebSocket reuses it.
                let ws = try await WebSocketConnection.connect(to: "wss://localhost:\(port)/echo", configuration: Self.clientConfiguration(certificate), group: Self.loops)
                try await ws.send(text: "still here")
                var messages = ws.messages.makeAsyncIterator()
                #expect(try await messages.next() == .text("still here"))
                #expect(server.acceptedConnectionCount == 1)
            }
        }
    }
}
