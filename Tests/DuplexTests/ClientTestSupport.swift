import Duplex
import DuplexCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Testing

// Helpers of the client tests: a Duplex server to talk to, raw TCP servers that answer a canned
// HTTP response, a small HTTP CONNECT proxy, and a time limit for every test.

/// A failure of the client tests' own machinery.
struct ClientTestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body`, failing with ``ClientTestFailure`` if it takes longer than `seconds`.
func withTimeLimit<T: Sendable>(
    _ seconds: Double = 20, _ what: String = "the test",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw ClientTestFailure("\(what) did not finish within \(seconds) s")
        }
        return value
    }
}

/// Client settings for loopback tests: no proxy from the environment, no keepalive pings, short timeouts.
func loopbackClientConfiguration(
    subprotocols: [String] = [], headers: HTTPFields = [:], origin: String? = nil,
    handshakeTimeout: TimeAmount = .seconds(5), closeTimeout: TimeAmount = .seconds(2)
) -> WebSocketClientConfiguration {
    var configuration = WebSocketClientConfiguration(
        subprotocols: subprotocols, headerFields: headers, origin: origin, handshakeTimeout: handshakeTimeout, proxy: .none
    )
    configuration.webSocket.pingInterval = nil
    configuration.webSocket.closeTimeout = closeTimeout
    return configuration
}

/// A quiet logger (set DUPLEX_TEST_LOG=debug to see the client's and the server's logs).
func clientTestLogger(_ label: String = "duplex.client-test") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["DUPLEX_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}

// MARK: - A Duplex server

/// Endpoints the client tests talk to:
/// - `/echo`: echoes every message (from the event loop);
/// - `/inspect`: sends one text message with the request as the server saw it
///   (`target|host|origin|authorization|x-test|subprotocol`), then echoes;
/// - `/close`: closes at once with the code and reason of the query (`code=4001&reason=bye`).
func clientTestRouter(subprotocols: [String] = ["chat.v1", "chat.v2"]) -> WebSocketRouter {
    var router = WebSocketRouter()
    // Echoed from the event loop: a message is sent back before a close that follows it is
    // answered (an async echo can lose the race against the server's automatic close reply).
    router.webSocket("/echo", WebSocketEndpoint(subprotocols: subprotocols, callbacks: WebSocketCallbacks(
        onMessage: { ws, data in ws.send(data) }
    )))
    // Sent from onOpen, on the event loop before any read: a client that closes at once (empty
    // stdin) still gets it first.
    router.webSocket("/inspect", WebSocketEndpoint(subprotocols: subprotocols, callbacks: WebSocketCallbacks(
        onOpen: { ws in
            let request = ws.socket.request
            let headers = request?.headerFields ?? [:]
            let fields = [
                request?.target ?? "", request?.head.authority ?? "", headers.first("Origin") ?? "",
                headers.first("Authorization") ?? "", headers.first("X-Test") ?? "", ws.socket.subprotocol ?? "",
            ]
            ws.send(text: fields.joined(separator: "|"))
        },
        onMessage: { ws, data in ws.send(data) }
    )))
    router.webSocket("/close", WebSocketEndpoint { ws in
        var code: UInt16 = 1000
        var reason = ""
        for pair in (ws.request?.query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 && parts[0] == "code" { code = UInt16(parts[1]) ?? 1000 }
            if parts.count == 2 && parts[0] == "reason" { reason = parts[1] }
        }
        try await ws.close(code: CloseCode(code), reason: reason)
    })
    return router
}

/// Starts a Duplex server on 127.0.0.1 (`port` 0 picks a free one).
func startClientTestServer(port: Int = 0, tls: TLSConfiguration? = nil) async throws -> (server: WebSocketServer, port: Int) {
    var webSocket = WebSocketConfiguration()
    webSocket.pingInterval = nil
    let server = WebSocketServer(
        configuration: .init(host: "127.0.0.1", port: port, tls: tls, webSocket: webSocket, shutdownGracePeriod: .seconds(2)),
        router: clientTestRouter(), logger: clientTestLogger("duplex.server")
    )
    let address = try await server.start()
    guard let bound = address.port else { throw ClientTestFailure("the server has no port") }
    return (server, bound)
}

/// Runs `body` with a fresh Duplex server's port, then shuts the server down.
func withClientTestServer(tls: TLSConfiguration? = nil, _ body: (Int) async throws -> Void) async throws {
    let (server, port) = try await startClientTestServer(tls: tls)
    do {
        try await body(port)
    } catch {
        await server.shutdown(gracePeriod: .milliseconds(100))
        throw error
    }
    await server.shutdown(gracePeriod: .milliseconds(100))
}

// MARK: - A raw TCP server with a canned answer

/// An HTTP request as a canned server received it.
struct ReceivedRequest: Sendable {
    var requestLine: String
    var headers: HTTPFields
}

/// A TCP server on 127.0.0.1 that reads one HTTP request head and answers with whatever
/// `respond` returns for it (written as it is), or nothing at all when it returns nil. The
/// connection stays open until the client closes it.
final class CannedHTTPServer: Sendable {
    let channel: any Channel
    let port: Int
    private let log: NIOLockedValueBox<[ReceivedRequest]>

    private init(channel: any Channel, port: Int, log: NIOLockedValueBox<[ReceivedRequest]>) {
        self.channel = channel
        self.port = port
        self.log = log
    }

    /// Requests received so far.
    var received: [ReceivedRequest] { log.withLockedValue { $0 } }

    /// The first request received, waiting for it up to 5 s (the server may read it after the
    /// client gave up).
    func firstRequest() async throws -> ReceivedRequest {
        for _ in 0..<500 {
            if let first = received.first { return first }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ClientTestFailure("the canned server received no request")
    }

    /// - Parameters:
    ///   - extraBytes: raw bytes written right after the answer (frames, for instance).
    ///   - closeAfterAnswer: close the TCP connection once the answer is written.
    static func start(extraBytes: [UInt8] = [], closeAfterAnswer: Bool = false,
                      _ respond: @escaping @Sendable (ReceivedRequest) -> String?) async throws -> CannedHTTPServer {
        let log = NIOLockedValueBox<[ReceivedRequest]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(CannedResponder(extraBytes: extraBytes, closeAfterAnswer: closeAfterAnswer, respond: { request in
                        log.withLockedValue { $0.append(request) }
                        return respond(request)
                    }))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return CannedHTTPServer(channel: channel, port: channel.localAddress!.port!, log: log)
    }

    func stop() async {
        try? await channel.close().get()
    }
}

private final class CannedResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let extraBytes: [UInt8]
    let closeAfterAnswer: Bool
    let respond: @Sendable (ReceivedRequest) -> String?
    var buffer = ByteBuffer()
    var answered = false

    init(extraBytes: [UInt8], closeAfterAnswer: Bool, respond: @escaping @Sendable (ReceivedRequest) -> String?) {
        self.extraBytes = extraBytes
        self.closeAfterAnswer = closeAfterAnswer
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !answered else { return }
        buffer.writeBuffer(&bytes)
        guard let request = parseRequestHead(&buffer) else { return }
        answered = true
        if let answer = respond(request) {
            var bytes = ByteBuffer(string: answer)
            bytes.writeBytes(extraBytes)
            let written = context.writeAndFlush(wrapOutboundOut(bytes))
            if closeAfterAnswer {
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Consumes and parses an HTTP request head (request line and header fields) from `buffer`.
func parseRequestHead(_ buffer: inout ByteBuffer) -> ReceivedRequest? {
    let view = buffer.readableBytesView
    guard let end = view.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
    let text = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
    buffer.moveReaderIndex(forwardBy: end.upperBound - view.startIndex)
    var lines = text.components(separatedBy: "\r\n")
    let requestLine = lines.removeFirst()
    var headers = HTTPFields()
    for line in lines {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers.add(name: String(line[..<colon]), value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
    return ReceivedRequest(requestLine: requestLine, headers: headers)
}

/// A 101 answer to `request` that completes the handshake, plus `extraHeaders` lines
/// (e.g. `"Sec-WebSocket-Protocol: x"`), minus the fields named in `omitting`.
func switchingProtocols(for request: ReceivedRequest, accept: String? = nil, omitting: Set<String> = [],
                        extraHeaders: [String] = []) -> String {
    let key = request.headers.first("Sec-WebSocket-Key") ?? ""
    var fields = [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept ?? AcceptKey.accept(forKey: key)),
    ].filter { !omitting.contains($0.0) }.map { "\($0.0): \($0.1)" }
    fields += extraHeaders
    return "HTTP/1.1 101 Switching Protocols\r\n" + fields.map { $0 + "\r\n" }.joined() + "\r\n"
}

// MARK: - An HTTP CONNECT proxy

/// A small HTTP proxy on 127.0.0.1 that answers `CONNECT host:port` with 200 and relays bytes
/// both ways, or refuses every request with `refuseWith` (e.g. `407 Proxy Authentication Required`).
final class TestConnectProxy: Sendable {
    let channel: any Channel
    let port: Int
    private let log: NIOLockedValueBox<[ReceivedRequest]>

    private init(channel: any Channel, port: Int, log: NIOLockedValueBox<[ReceivedRequest]>) {
        self.channel = channel
        self.port = port
        self.log = log
    }

    /// The CONNECT requests received so far.
    var requests: [ReceivedRequest] { log.withLockedValue { $0 } }

    /// - Parameters:
    ///   - status: refuse every request with this status line (e.g. `407 Proxy Authentication Required`).
    ///   - connectTo: open every tunnel to this host instead of the requested one (the port is kept),
    ///     so tests can use names that do not resolve.
    static func start(refuseWith status: String? = nil, connectTo: String? = nil) async throws -> TestConnectProxy {
        let log = NIOLockedValueBox<[ReceivedRequest]>([])
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ProxyFrontHandler(refuseWith: status, connectTo: connectTo, log: log))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return TestConnectProxy(channel: channel, port: channel.localAddress!.port!, log: log)
    }

    func stop() async {
        try? await channel.close().get()
    }
}

/// The proxy's side facing the client: reads the CONNECT request, opens the upstream connection,
/// then relays.
private final class ProxyFrontHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let refuseWith: String?
    let connectTo: String?
    let log: NIOLockedValueBox<[ReceivedRequest]>
    var buffer = ByteBuffer()
    var upstream: (any Channel)?
    var connecting = false

    init(refuseWith: String?, connectTo: String?, log: NIOLockedValueBox<[ReceivedRequest]>) {
        self.refuseWith = refuseWith
        self.connectTo = connectTo
        self.log = log
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if let upstream {
            upstream.writeAndFlush(bytes, promise: nil)
            return
        }
        buffer.writeBuffer(&bytes)
        guard !connecting, let request = parseRequestHead(&buffer) else { return }
        connecting = true
        log.withLockedValue { $0.append(request) }
        let parts = request.requestLine.split(separator: " ")
        if let refuseWith {
            reply(context, "HTTP/1.1 \(refuseWith)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", thenClose: true)
            return
        }
        guard parts.count == 3, parts[0] == "CONNECT", let colon = parts[1].lastIndex(of: ":"),
              let port = Int(parts[1][parts[1].index(after: colon)...]) else {
            reply(context, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", thenClose: true)
            return
        }
        var host = String(parts[1][..<colon])
        if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
        if let connectTo { host = connectTo }
        let front = context.channel
        let loop = context.eventLoop
        ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ProxyRelayHandler(peer: front))
                }
            }
            .connect(host: host, port: port)
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    upstream = channel
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 Connection established\r\n\r\n")),
                                          promise: nil)
                    if buffer.readableBytes > 0 {
                        channel.writeAndFlush(buffer, promise: nil)
                        buffer.clear()
                    }
                case .failure:
                    reply(context, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", thenClose: true)
                }
            }
    }

    private func reply(_ context: ChannelHandlerContext, _ text: String, thenClose: Bool) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text))).assumeIsolated().whenComplete { _ in
            if thenClose { context.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        upstream?.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// The proxy's side facing the server: relays what it reads to the client.
private final class ProxyRelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let peer: any Channel

    init(peer: any Channel) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

// MARK: - TLS

/// Runs `process` to its end and returns its exit status, awaiting Foundation's
/// `terminationHandler`: `waitUntilExit()` would hold one of the cooperative pool's threads (two
/// on a 2-core machine, shared by every test) for as long as the process runs.
func exitStatus(of process: Process) async throws -> Int32 {
    try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
        do {
            try process.run()
        } catch {
            continuation.resume(throwing: error)
        }
    }
}

/// A self-signed certificate (by default for `localhost` and 127.0.0.1), made with the `openssl`
/// command in a fresh temporary directory.
struct TestCertificate {
    let directory: URL
    let certificatePath: String
    let keyPath: String

    /// A self-signed certificate for CN=localhost with `subjectAltName` (openssl's syntax), or no
    /// subject alternative names when it is nil.
    static func make(subjectAltName: String? = "DNS:localhost,IP:127.0.0.1") async throws -> TestCertificate {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("duplex-client-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=localhost",
        ] + (subjectAltName.map { ["-addext", "subjectAltName=\($0)"] } ?? [])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let status = try await exitStatus(of: process)
        guard status == 0 else { throw ClientTestFailure("openssl exited with \(status)") }
        return TestCertificate(directory: directory, certificatePath: certificate, keyPath: key)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    func serverTLS() throws -> TLSConfiguration {
        try TLSConfiguration.duplexServer(certificatePath: certificatePath, privateKeyPath: keyPath)
    }
}
