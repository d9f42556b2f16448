// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Duplex",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "DuplexCore", targets: ["DuplexCore"]),
        .library(name: "Duplex", targets: ["Duplex"]),
        .library(name: "DuplexRedis", targets: ["DuplexRedis"]),
        .library(name: "DuplexPostgres", targets: ["DuplexPostgres"]),
        .executable(name: "duplex", targets: ["DuplexCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        // `swift package generate-documentation` (scripts/docs-check.sh): the DocC catalogs in Sources/*/*.docc.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // The WebSocket protocol, sans-I/O: no sockets, clocks, threads or event loops.
        .target(
            name: "DuplexCore",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        // The network layer: server and client over SwiftNIO.
        .target(
            name: "Duplex",
            dependencies: [
                "DuplexCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHTTPTypesHTTP2", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Topics across servers through Redis: a small RESP2 client on SwiftNIO and `RedisBroker`.
        .target(
            name: "DuplexRedis",
            dependencies: [
                "Duplex",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Topics across servers through PostgreSQL LISTEN/NOTIFY (postgres-nio): `PostgresBroker`.
        .target(
            name: "DuplexPostgres",
            dependencies: [
                "Duplex",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The `duplex` command-line tool.
        .executableTarget(
            name: "DuplexCLI",
            dependencies: [
                "Duplex",
                "DuplexRedis",
                "DuplexPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            // The demo app at `/` (index.html, app.js, style.css), read with Bundle.module.
            resources: [.copy("Resources")]
        ),
        // Side-by-side micro-benchmarks of DuplexCore against SwiftNIO's NIOWebSocket.
        .executableTarget(
            name: "DuplexCoreBenchmarks",
            dependencies: [
                "DuplexCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Benchmarks/DuplexCoreBenchmarks"
        ),
        // Benchmark-only: a WebSocket echo server on NIOWebSocket, the peer in Benchmarks/run-load.sh.
        .executableTarget(
            name: "nio-echo-server",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Benchmarks/NIOEchoServer"
        ),
        // Benchmark-only: the same echo in NIO's async idiom (NIOTypedWebSocketServerUpgrader + NIOAsyncChannel),
        // the peer of Duplex's async API in Benchmarks/run-load.sh.
        .executableTarget(
            name: "nio-async-echo-server",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Benchmarks/NIOAsyncEchoServer"
        ),
        // Benchmark-only: a bare NIO server answering a canned 101, the per-connection memory floor of any
        // NIO-based server (Benchmarks/run-load.sh, W4 floor).
        .executableTarget(
            name: "nio-floor-server",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/NIOFloorServer"
        ),
        // Benchmark-only: Duplex's echo (callbacks or async API) through the public API only, for
        // Benchmarks/run-load.sh.
        .executableTarget(
            name: "duplex-echo-server",
            dependencies: [
                "Duplex",
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/DuplexEchoServer"
        ),
        // Benchmark-only: N WebSockets over one HTTP/2 connection or their own, through the public client
        // API (docs/benchmarks.md, "WebSockets over HTTP/2").
        .executableTarget(
            name: "h2-bench",
            dependencies: [
                "Duplex",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Benchmarks/H2Bench"
        ),
        // The Duplex client as the testee of Autobahn|Testsuite's fuzzing server (../shared/autobahn/test-client.sh).
        .executableTarget(name: "autobahn-client", dependencies: ["Duplex"], path: "Sources/AutobahnClient"),
        // Examples/ (README there): each builds with the package and has its tests in ExamplesTests.
        .executableTarget(
            name: "chat-rooms",
            dependencies: [
                "Duplex",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/ChatRooms"
        ),
        .executableTarget(
            name: "ticker-publisher",
            dependencies: [
                "Duplex",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/TickerPublisher"
        ),
        .executableTarget(
            name: "reconnecting-client",
            dependencies: ["Duplex", .product(name: "NIOCore", package: "swift-nio")],
            path: "Examples/ReconnectingClient"
        ),
        .testTarget(
            name: "ExamplesTests",
            dependencies: ["chat-rooms", "ticker-publisher", "Duplex"]
        ),
        .testTarget(
            name: "DuplexCoreTests",
            dependencies: ["DuplexCore", .product(name: "HTTPTypes", package: "swift-http-types")]
        ),
        .testTarget(
            name: "DuplexTests",
            dependencies: [
                "Duplex",
                "DuplexCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        // Topics across servers through real brokers (redis-server, PostgreSQL) that the tests start.
        .testTarget(
            name: "DuplexBrokerTests",
            dependencies: [
                "DuplexCLI",
                "Duplex",
                "DuplexRedis",
                "DuplexPostgres",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "DuplexCLITests",
            dependencies: [
                "DuplexCLI",
                "Duplex",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
