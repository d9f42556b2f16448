import Duplex
import Foundation
import NIOCore

/// The demo app `duplex serve` shows at `/`: plain HTML, CSS and JavaScript in Resources/,
/// read once from the package's resource bundle and answered from memory.
enum DemoPage {
    /// One file of the app and the path it is served at.
    struct Asset: Sendable {
        var path: String
        var file: String
        var contentType: String
    }

    static let assets = [
        Asset(path: "/", file: "index.html", contentType: "text/html; charset=utf-8"),
        Asset(path: "/demo/app.js", file: "app.js", contentType: "text/javascript; charset=utf-8"),
        Asset(path: "/demo/style.css", file: "style.css", contentType: "text/css; charset=utf-8"),
        // The browser client with HTTP fallbacks, for any page (the demo uses it).
        Asset(path: "/duplex.js", file: "duplex.js", contentType: "text/javascript; charset=utf-8"),
    ]

    /// Registers a GET route per asset.
    static func register(in router: inout WebSocketRouter) {
        for (path, response) in responses() {
            router.get(path) { _ in response }
        }
    }

    /// Each asset's path and its answer, read now: a 500 saying which file is missing if it
    /// cannot be read, so that the other endpoints still serve.
    static func responses() -> [(path: String, response: RouteResponse)] {
        assets.map { asset in
            do {
                let fields: HTTPFields = [.contentType: asset.contentType, .cacheControl: "no-cache"]
                return (asset.path, RouteResponse(headerFields: fields, body: ByteBuffer(bytes: try contents(of: asset.file))))
            } catch {
                return (asset.path, .text("duplex serve: demo file \(asset.file) unreadable: \(error)\n", status: .internalServerError))
            }
        }
    }

    /// A file of Resources/ from the bundle SwiftPM builds next to the executable.
    static func contents(of file: String) throws -> Data {
        guard let url = Bundle.module.url(forResource: file, withExtension: nil, subdirectory: "Resources") else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "Resources/\(file) in \(Bundle.module.bundlePath)"])
        }
        return try Data(contentsOf: url)
    }
}
