import ArgumentParser
import Duplex
import NIOCore
import Testing
@testable import DuplexCLI

/// `duplex serve`: its options, their validation, and the routes it mounts.
@Suite struct ServeCommandTests {
    @Test func defaults() throws {
        let serve = try Serve.parse([])
        #expect(serve.host == "127.0.0.1")
        #expect(serve.port == 8080)
        #expect(serve.deflate)
        #expect(serve.maxMessageSize == Limits.default.maxMessageSize)
    }

    @Test(arguments: [
        ["--tls-cert", "cert.pem"],  // a certificate without its key
        ["--tls-key", "key.pem"],
        ["--log-level", "loud"],
        ["--max-message-size", "0"],
        ["--high-water-mark", "100", "--hard-limit", "10"],
        ["--deflate-window-bits", "8"],
        ["--deflate-level", "10"],
        ["--deflate-memory-level", "0"],
    ])
    func invalidOptionsAreRefused(arguments: [String]) {
        #expect(throws: (any Error).self) { _ = try Serve.parse(arguments) }
    }

    @Test func deflateOptionsReachTheConfiguration() throws {
        let serve = try Serve.parse(["--deflate-window-bits", "12", "--deflate-no-context-takeover", "--deflate-min-size", "10"])
        let configuration = serve.deflateConfiguration
        #expect(configuration.maxWindowBits == 12)
        #expect(configuration.noContextTakeover)
        #expect(configuration.minimumMessageSize == 10)
        #expect(try Serve.parse(["--no-deflate"]).deflate == false)
    }

    @Test func http2Options() throws {
        let defaults = try Serve.parse([])
        #expect(defaults.http2, "with TLS, h2 is offered by default")
        #expect(!defaults.h2c, "h2c is off by default")
        #expect(try Serve.parse(["--no-http2"]).http2 == false)
        #expect(try Serve.parse(["--h2c"]).h2c)
    }

    @Test func demoAppIsServedFromTheBundle() throws {
        let responses = Dictionary(uniqueKeysWithValues: DemoPage.responses().map { ($0.path, $0.response) })
        let types = ["/": "text/html", "/demo/app.js": "text/javascript", "/demo/style.css": "text/css", "/duplex.js": "text/javascript"]
        for (path, type) in types {
            let response = try #require(responses[path], "no route for \(path)")
            #expect(response.status == .ok, "\(path): \(String(buffer: response.body))")
            #expect(response.headerFields[.contentType] == "\(type); charset=utf-8")
            #expect(response.body.readableBytes > 0)
        }
        let page = String(buffer: try #require(responses["/"]).body)
        #expect(page.contains("src=\"/demo/app.js\"") && page.contains("href=\"/demo/style.css\"") && page.contains("src=\"/duplex.js\""))
        let app = String(buffer: try #require(responses["/demo/app.js"]).body)
        #expect(app.contains("\"/echo\"") && app.contains("\"/topics/ticker\"") && app.contains("new DuplexSocket("))
        let client = String(buffer: try #require(responses["/duplex.js"]).body)
        #expect(client.contains("new WebSocket(") && client.contains("new EventSource(") && client.contains("transport=\" + this.transport"))
    }
}
