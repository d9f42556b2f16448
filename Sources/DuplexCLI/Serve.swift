import ArgumentParser
import Duplex
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `duplex serve`: an echo endpoint (the Autobahn testee) and a demo page.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve WebSocket endpoints: /echo echoes every message, / is a demo page."
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8080
    @Option(help: "PEM certificate chain for wss:// (with --tls-key).") var tlsCert: String?
    @Option(help: "PEM private key for wss:// (with --tls-cert).") var tlsKey: String?
    @Flag(inversion: .prefixedNo, help: "With TLS: offer HTTP/2 through ALPN (h2, then http/1.1): WebSockets as HTTP/2 streams (RFC 8441).")
    var http2 = true
    @Flag(help: "On a plain port: speak HTTP/2 to clients that open with its preface (h2c, prior knowledge).")
    var h2c = false
    @Option(help: "Largest message in bytes (close 1009 over it).") var maxMessageSize = Limits.default.maxMessageSize
    @Option(help: "Largest frame payload in bytes (close 1009 over it).") var maxFrameSize = Limits.default.maxFrameSize
    @Option(help: "Seconds between keepalive pings (0 turns them off).") var pingInterval = 30.0
    @Option(help: "Seconds to wait for a pong before closing with 1011.") var pongTimeout = 20.0
    @Option(help: "Seconds without received data before closing with 1001 (0 turns it off).") var idleTimeout = 0.0
    @Option(help: "Seconds to wait for the peer's close frame or TCP close after sending a close frame.") var closeTimeout = 5.0
    @Option(help: "Seconds a connection has to complete its HTTP request / upgrade.") var handshakeTimeout = 10.0
    @Option(help: "Outbound bytes buffered per connection before backpressure applies.") var highWaterMark = 1 << 20
    @Option(help: "Outbound bytes buffered per connection before the connection is closed with 1013.") var hardLimit = 16 << 20
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel = "info"
    @Flag(inversion: .prefixedNo, help: "Offer permessage-deflate compression (RFC 7692) to clients that ask for it.")
    var deflate = true
    @Option(help: "permessage-deflate: largest compression window in bits (9-15).") var deflateWindowBits = 15
    @Flag(help: "permessage-deflate: reset the compression context after every message (less memory, less ratio).")
    var deflateNoContextTakeover = false
    @Option(help: "permessage-deflate: zlib level 0-9, or -1 for zlib's default.") var deflateLevel: Int32 = -1
    @Option(help: "permessage-deflate: zlib memLevel 1-9 (compressor state of 2^(memLevel+9) bytes).") var deflateMemoryLevel: Int32 = 8
    @Option(help: "permessage-deflate: messages under this many bytes go uncompressed.") var deflateMinSize = 64
    @Option(help: "Event loop threads (default: one per core, NIO's shared group).") var threads: Int?
    @Option(help: "Seconds between the simulated ticker's prices on topic `ticker` (0 turns it off).")
    var tickerInterval = 0.5
    @Flag(help: "Serve Prometheus metrics at GET /metrics (swift-prometheus as the swift-metrics backend).")
    var metrics = false
    @Option(help: ArgumentHelp("Broker that carries topics to other instances: redis://[:PASS@]HOST[:PORT][/DB] or postgres://USER:PASS@HOST[:PORT]/DB (default: $DUPLEX_BROKER; none: this instance only).",
                               valueName: "url"))
    var broker: String?

    /// `--broker`, else `$DUPLEX_BROKER` (empty means none).
    var brokerURL: String? {
        if let broker { return broker.isEmpty ? nil : broker }
        guard let value = getenv(BrokerSetup.environmentVariable) else { return nil }
        let url = String(cString: value)
        return url.isEmpty ? nil : url
    }

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
        guard maxMessageSize > 0, maxFrameSize > 0 else { throw ValidationError("size limits must be positive") }
        guard highWaterMark <= hardLimit else { throw ValidationError("--high-water-mark must not exceed --hard-limit") }
        guard (9...15).contains(deflateWindowBits) else { throw ValidationError("--deflate-window-bits must be 9...15") }
        guard (-1...9).contains(deflateLevel) else { throw ValidationError("--deflate-level must be -1...9") }
        guard (1...9).contains(deflateMemoryLevel) else { throw ValidationError("--deflate-memory-level must be 1...9") }
        if let threads, threads <= 0 { throw ValidationError("--threads must be positive") }
        guard tickerInterval >= 0 else { throw ValidationError("--ticker-interval must not be negative") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "duplex.serve")
        // Before the server exists: its metrics bind to the backend when they are made.
        let registry = metrics ? MetricsRoute.bootstrap() : nil

        let webSocket = WebSocketConfiguration(
            limits: Limits(maxFrameSize: maxFrameSize, maxMessageSize: maxMessageSize),
            pingInterval: pingInterval > 0 ? .seconds(pingInterval) : nil,
            pongTimeout: .seconds(pongTimeout),
            idleTimeout: idleTimeout > 0 ? .seconds(idleTimeout) : nil,
            closeTimeout: .seconds(closeTimeout),
            outboundHighWaterMark: highWaterMark,
            outboundLowWaterMark: highWaterMark / 4,
            outboundHardLimit: hardLimit
        )
        let tls = try tlsCert.map { try TLSConfiguration.duplexServer(certificatePath: $0, privateKeyPath: tlsKey!, http2: http2) }
        let eventLoops: MultiThreadedEventLoopGroup = threads.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) } ?? .singleton
        let reference = ServerReference()
        let fanoutReference = FanoutReference()
        var router = Self.router(extensions: deflate ? [PerMessageDeflate.ServerNegotiator(configuration: deflateConfiguration)] : [],
                                 server: reference, metrics: registry)
        BrokerSetup.registerHealth(on: &router, fanout: fanoutReference)
        var configuration = WebSocketServer.Configuration(host: host, port: port, tls: tls, webSocket: webSocket,
                                                          handshakeTimeout: .seconds(handshakeTimeout))
        configuration.http2.priorKnowledgeCleartext = h2c
        let server = WebSocketServer(
            configuration: configuration,
            router: router,
            group: eventLoops,
            logger: logger
        )
        reference.set(server)
        var fanout: BrokerFanout?
        if let brokerURL {
            do {
                let made = BrokerFanout(broker: try BrokerSetup.broker(for: brokerURL), server: server,
                                        logger: Logger(label: "duplex.broker"))
                try await made.start()
                fanoutReference.set(made)
                fanout = made
            } catch {
                // A wrong or unreachable broker at start is a configuration error: say so, exit 1.
                var standardError = StandardError()
                print("duplex serve: \(error)", to: &standardError)
                throw ExitCode.failure
            }
        }
        let address = try await server.start()
        let scheme = tls == nil ? "http" : "https"
        let wsScheme = tls == nil ? "ws" : "wss"
        let hostPart = address.ipAddress.map { $0.contains(":") ? "[\($0)]" : $0 } ?? host
        let authority = "\(hostPart):\(address.port ?? port)"
        print("duplex serve: listening on \(scheme)://\(authority)/ (demo page)")
        print("duplex serve: echo endpoint \(wsScheme)://\(authority)/echo")
        print("duplex serve: topics \(wsScheme)://\(authority)/topics/NAME, POST \(scheme)://\(authority)/publish/NAME, GET \(scheme)://\(authority)/topics")
        print("duplex serve: SSE and long-polling fallbacks at every endpoint (docs/fallbacks.md), browser client \(scheme)://\(authority)/duplex.js;"
              + " curl -N -H 'Accept: text/event-stream' \(scheme)://\(authority)/topics/NAME")
        print("duplex serve: health check \(scheme)://\(authority)/healthz, transports \(scheme)://\(authority)/stats/transports")
        if registry != nil { print("duplex serve: Prometheus metrics \(scheme)://\(authority)/metrics") }
        if let fanout {
            print("duplex serve: topics shared through \(fanout.broker.redactedDescription) as node \(fanout.node)")
        }
        fflush(nil)  // all streams: the URLs must show at once in a pipe too
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        if let fanout { services.append(.init(service: fanout)) }
        if tickerInterval > 0 {
            services.append(.init(service: TickerService(server: server, interval: .nanoseconds(Int64(tickerInterval * 1e9)),
                                                         node: fanout.map { String($0.node.description.prefix(8)) })))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }

    var deflateConfiguration: PerMessageDeflateConfiguration {
        PerMessageDeflateConfiguration(
            noContextTakeover: deflateNoContextTakeover, maxWindowBits: deflateWindowBits,
            compressionLevel: deflateLevel, memoryLevel: deflateMemoryLevel, minimumMessageSize: deflateMinSize
        )
    }

    static func router(extensions: [any ServerExtensionNegotiator] = [], server: ServerReference = ServerReference(),
                       metrics: PrometheusCollectorRegistry? = nil) -> WebSocketRouter {
        var router = WebSocketRouter()
        if let metrics { MetricsRoute.register(on: &router, registry: metrics) }
        TopicRoutes.register(on: &router, server: server, extensions: extensions)
        router.webSocket("/echo", WebSocketEndpoint(extensions: extensions, callbacks: WebSocketCallbacks(onMessage: { ws, data in
            ws.send(data)
        })))
        DemoPage.register(in: &router)
        TransportRoutes.register(on: &router, server: server)
        return router
    }
}

/// Standard error as a `print(_:to:)` target.
struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { writeToStandardError(string) }
}

private func writeToStandardError(_ string: String) {
    let bytes = Array(string.utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

extension TimeAmount {
    static func seconds(_ value: Double) -> TimeAmount { .nanoseconds(Int64(value * 1_000_000_000)) }
}
