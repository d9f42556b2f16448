// swift-tools-version:6.0
import PackageDescription

// Duplex endpoints on a Vapor 4 application's routes and port. A package of its own, so that
// Duplex itself (../..) does not pull Vapor into every user's build.
let package = Package(
    name: "DuplexVapor",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "DuplexVapor", targets: ["DuplexVapor"]),
    ],
    dependencies: [
        .package(name: "Duplex", path: "../.."),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "DuplexVapor",
            dependencies: [
                .product(name: "Duplex", package: "Duplex"),
                .product(name: "DuplexCore", package: "Duplex"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "DuplexVaporTests",
            dependencies: [
                "DuplexVapor",
                .product(name: "Duplex", package: "Duplex"),
                .product(name: "DuplexCore", package: "Duplex"),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
