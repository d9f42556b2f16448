// swift-tools-version:6.0
import PackageDescription

// Duplex endpoints on a Hummingbird 2 application's router and port. A package of its own, so that
// Duplex itself (../..) does not pull Hummingbird into every user's build.
let package = Package(
    name: "DuplexHummingbird",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "DuplexHummingbird", targets: ["DuplexHummingbird"]),
        .executable(name: "hummingbird-chat", targets: ["hummingbird-chat"]),
    ],
    dependencies: [
        .package(name: "Duplex", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "DuplexHummingbird",
            dependencies: [
                .product(name: "Duplex", package: "Duplex"),
                .product(name: "DuplexCore", package: "Duplex"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Examples/HummingbirdChat: the app (a library, for the tests) and its executable.
        .target(
            name: "HummingbirdChat",
            dependencies: [
                "DuplexHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/HummingbirdChat/App"
        ),
        .executableTarget(name: "hummingbird-chat", dependencies: ["HummingbirdChat"], path: "Examples/HummingbirdChat/Main"),
        .testTarget(
            name: "DuplexHummingbirdTests",
            dependencies: [
                "DuplexHummingbird",
                "HummingbirdChat",
                .product(name: "Duplex", package: "Duplex"),
                .product(name: "DuplexCore", package: "Duplex"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
