import Duplex
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing
@testable import DuplexCLI

/// `duplex bench`'s connections against an in-process server: source addresses, and the
/// server's closes counted by code.
@Suite struct BenchConnectionTests {
    /// Starts a server with `endpoint` at `/s` on 127.0.0.1, runs `body` with a bench endpoint for it.
    static func withServer(_ endpoint: WebSocketEndpoint, _ body: (BenchEndpoint) async throws -> Void) async throws {
        var router = WebSocketRouter()
        router.webSocket("/s", endpoint)
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0), router: router)
        let port = try #require(try await server.start().port)
        do {
            try await body(BenchEndpoint(try WebSocketURL("ws://127.0.0.1:\(port)/s"), maxFrameSize: 1 << 16))
        } catch {
            await server.shutdown(gracePeriod: .milliseconds(100))
            throw error
        }
        await server.shutdown(gracePeriod: .milliseconds(100))
    }

    /// Opens `count` subscribers on one loop and runs `body` with the loops.
    static func withSubscribers(
        _ count: Int, to endpoint: BenchEndpoint, sources: BenchSources? = nil,
        _ body: (BenchLoops<FanoutLoop>, BenchOpening) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loops = try await BenchLoops(group: group) { FanoutLoop() }
        let opening = await loops.open(count: count, concurrency: 2, endpoint: endpoint, sources: sources) {
            loop, upgraded, eventLoop in
            SubscriberConnection(endpoint: endpoint, loop: loop, upgraded: upgraded, eventLoop: eventLoop)
        }
        do {
            try await body(loops, opening)
        } catch {
            await loops.closeAll()
            try await group.shutdownGracefully()
            throw error
        }
        await loops.closeAll()
        try await group.shutdownGracefully()
    }

    @Test func connectionsBindTheirSourceAddresses() async throws {
        let seen = NIOLockedValueBox<[String]>([])
        let endpoint = WebSocketEndpoint(callbacks: WebSocketCallbacks(
            onOpen: { ws in seen.withLockedValue { $0.append(ws.request?.remoteAddress?.ipAddress ?? "?") } },
            onMessage: { _, _ in }
        ))
        try await Self.withServer(endpoint) { target in
            // Two a source address: 127.0.0.1, .1, .2, .2, .3.
            try await Self.withSubscribers(5, to: target, sources: BenchSources(perAddress: 2)) { _, opening in
                #expect(opening.opened == 5, "\(opening.firstError ?? "")")
                for _ in 0..<100 where seen.withLockedValue({ $0.count }) < 5 { try await Task.sleep(nanoseconds: 10_000_000) }
                #expect(seen.withLockedValue { $0.sorted() } == ["127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.3"])
            }
        }
    }

    @Test func closesByTheServerAreCountedByCode() async throws {
        let endpoint = WebSocketEndpoint(callbacks: WebSocketCallbacks(
            onOpen: { ws in try? ws.close(code: .tryAgainLater) },
            onMessage: { _, _ in }
        ))
        try await Self.withServer(endpoint) { target in
            try await Self.withSubscribers(3, to: target) { loops, _ in
                var closes: [UInt16: Int] = [:]
                for _ in 0..<200 {
                    closes = try await loops.collect { $0.serverCloses }[0]
                    if closes.values.reduce(0, +) >= 3 { break }
                    try await Task.sleep(nanoseconds: 10_000_000)
                }
                #expect(closes == [1013: 3])
                // Closes are what a fan-out run looks for, not errors.
                #expect(try await loops.collect { $0.errors.total } == [0])
                // Nothing was published: nothing lost after the closes.
                let end = try await loops.collect { $0.finish(published: 0) }[0]
                #expect(end.counts.lostAfterClose == 0 && end.counts.losses == 0)
                #expect(try await loops.collect { $0.finish(published: 10) }[0].counts.lostAfterClose == 30)
            }
        }
    }

    @Test func wssConnectionsOpenOverTLS() async throws {
        let certificate = try await BenchTestCertificate.make()
        defer { certificate.remove() }
        var router = WebSocketRouter()
        let opened = NIOLockedValueBox(0)
        router.webSocket("/s", WebSocketEndpoint(callbacks: WebSocketCallbacks(
            onOpen: { _ in opened.withLockedValue { $0 += 1 } }, onMessage: { _, _ in }
        )))
        let tls = try TLSConfiguration.duplexServer(certificatePath: certificate.certificatePath, privateKeyPath: certificate.keyPath)
        let server = WebSocketServer(configuration: .init(host: "127.0.0.1", port: 0, tls: tls), router: router)
        let port = try #require(try await server.start().port)
        defer { Task { await server.shutdown(gracePeriod: .milliseconds(100)) } }
        let url = "wss://localhost:\(port)/s"

        // Trusting the certificate's own file as the CA: verified, SNI and name check on "localhost".
        let trusted = try BenchRunOptions.parse(["--ca", certificate.certificatePath]).endpoint(url, maxFrameSize: 1 << 16)
        #expect(trusted.tls != nil && trusted.serverName == "localhost")
        try await Self.withSubscribers(3, to: trusted) { _, opening in
            #expect(opening.opened == 3, "\(opening.firstError ?? "")")
        }
        #expect(opened.withLockedValue { $0 } == 3)

        // With -k the self-signed certificate is accepted without a CA.
        let insecure = try BenchRunOptions.parse(["-k"]).endpoint(url, maxFrameSize: 1 << 16)
        try await Self.withSubscribers(2, to: insecure) { _, opening in
            #expect(opening.opened == 2, "\(opening.firstError ?? "")")
        }

        // Without either, the system trust store refuses it: no connection opens.
        let strict = try BenchRunOptions.parse([]).endpoint(url, maxFrameSize: 1 << 16)
        try await Self.withSubscribers(1, to: strict) { _, opening in
            #expect(opening.opened == 0)
            #expect(opening.firstError != nil)
        }
        #expect(opened.withLockedValue { $0 } == 5)
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1 made with the `openssl` command.
struct BenchTestCertificate {
    let directory: URL
    var certificatePath: String { directory.appendingPathComponent("cert.pem").path }
    var keyPath: String { directory.appendingPathComponent("key.pem").path }

    /// openssl's end is awaited through `terminationHandler`, not `waitUntilExit()`, which would
    /// hold one of the cooperative pool's two threads while it runs.
    static func make() async throws -> BenchTestCertificate {
        let made = BenchTestCertificate(directory: FileManager.default.temporaryDirectory.appendingPathComponent("duplex-bench-tls-\(UUID().uuidString)"))
        try FileManager.default.createDirectory(at: made.directory, withIntermediateDirectories: true)
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                             "-keyout", made.keyPath, "-out", made.certificatePath, "-days", "1", "-subj", "/CN=localhost",
                             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            openssl.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try openssl.run()
            } catch {
                continuation.resume(throwing: error)
            }
        }
        guard status == 0 else { throw BenchError.handshake("openssl exited with \(status)") }
        return made
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}
