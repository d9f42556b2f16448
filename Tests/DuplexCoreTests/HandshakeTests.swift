import HTTPTypes
import Testing
@testable import DuplexCore

/// The opening handshake's rules (RFC 6455 §4): ServerHandshake and ClientHandshake.
@Suite struct HandshakeTests {
    static let rfcKey = "dGhlIHNhbXBsZSBub25jZQ=="
    static let rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    /// The request of RFC 6455 §1.2 (its `Host` is the authority, as HTTP/1.1 bridges put it).
    static func goodRequest() -> HTTPRequest {
        HTTPRequest(method: .get, scheme: nil, authority: "server.example.com", path: "/chat?room=1", headerFields: [
            .upgrade: "websocket",
            .connection: "Upgrade",
            .secWebSocketKey: rfcKey,
            .origin: "http://example.com",
            .secWebSocketProtocol: "chat, superchat",
            .secWebSocketVersion: "13",
        ])
    }

    static func request(_ edit: (inout HTTPFields) -> Void) -> HTTPRequest {
        var request = goodRequest()
        edit(&request.headerFields)
        return request
    }

    static func error(_ request: HTTPRequest, httpVersion: (major: Int, minor: Int) = (1, 1),
                      maxHeaderBytes: Int = ServerHandshake.defaultMaxHeaderBytes) -> HandshakeError? {
        if case .failure(let error) = ServerHandshake.validate(request, httpVersion: httpVersion, maxHeaderBytes: maxHeaderBytes) {
            return error
        }
        return nil
    }

    static func upgrade(_ request: HTTPRequest) throws -> ServerHandshake.UpgradeRequest {
        try ServerHandshake.validate(request).get()
    }

    // MARK: - Server

    @Test func goodRequestPassesAndIsAccepted() throws {
        let upgrade = try Self.upgrade(Self.goodRequest())
        #expect(upgrade.key == Self.rfcKey)
        #expect(upgrade.subprotocols == ["chat", "superchat"])
        #expect(upgrade.extensionOffers.isEmpty)
        #expect(upgrade.host == "server.example.com")
        #expect(upgrade.origin == "http://example.com")
        #expect(upgrade.request.path == "/chat?room=1")
        #expect(ServerHandshake.isUpgradeRequest(Self.goodRequest().headerFields))

        let acceptance = ServerHandshake.accept(upgrade)
        #expect(acceptance.headerFields.values("Upgrade") == ["websocket"])
        #expect(acceptance.headerFields.values("Connection") == ["Upgrade"])
        #expect(acceptance.headerFields.values("Sec-WebSocket-Accept") == [Self.rfcAccept])
        #expect(acceptance.headerFields.values("Sec-WebSocket-Protocol").isEmpty)
        #expect(acceptance.headerFields.values("Sec-WebSocket-Extensions").isEmpty)
        #expect(acceptance.subprotocol == nil)
        #expect(acceptance.extensions.isEmpty)
    }

    @Test func tokensAreCaseInsensitiveAndInLists() throws {
        var request = Self.request { headers in
            headers = HTTPFields()
            headers.add(name: "UPGRADE", value: "WebSocket")
            headers.add(name: "connection", value: "keep-alive, Upgrade")
            headers.add(name: "sec-websocket-key", value: "  \(Self.rfcKey) ")
            headers.add(name: "SEC-WEBSOCKET-VERSION", value: "13")
        }
        request.authority = "example.com:8080"
        let upgrade = try Self.upgrade(request)
        #expect(upgrade.key == Self.rfcKey)
        #expect(ServerHandshake.accept(upgrade).headerFields.values("sec-websocket-accept") == [Self.rfcAccept])
        for connection in ["upgrade", "UPGRADE", "Upgrade, keep-alive", "keep-alive,upgrade", "keep-alive ,\tUpgrade"] {
            #expect(Self.error(Self.request { $0[1].value = connection }) == nil, "\(connection)")
        }
        for upgrade in ["websocket", "WEBSOCKET", "h2c, websocket"] {
            #expect(Self.error(Self.request { $0[0].value = upgrade }) == nil, "\(upgrade)")
        }
        // Across two header lines.
        #expect(Self.error(Self.request {
            $0[1].value = "keep-alive"
            $0.add(name: "Connection", value: "Upgrade")
        }) == nil)
    }

    static func remove(_ name: String) -> (inout HTTPFields) -> Void {
        { $0.remove(name) }
    }

    static func set(_ name: String, _ value: String) -> (inout HTTPFields) -> Void {
        { headers in
            remove(name)(&headers)
            headers.add(name: name, value: value)
        }
    }

    @Test func methodMustBeGET() {
        var request = Self.goodRequest()
        request.method = .post
        let error = Self.error(request)
        #expect(error == .methodNotGet("POST"))
        #expect(error?.status == 405)
        #expect(error.map(ServerHandshake.rejection(for:)) == [.allow: "GET"])
    }

    @Test func httpVersionMustBeAtLeast1_1() {
        let request = Self.goodRequest()
        #expect(Self.error(request, httpVersion: (1, 0)) == .httpVersionTooOld("HTTP/1.0"))
        #expect(Self.error(request, httpVersion: (1, 0))?.status == 400)
        #expect(Self.error(request, httpVersion: (0, 9))?.status == 400)
        #expect(Self.error(request, httpVersion: (2, 0)) == nil)
    }

    @Test func hostMustBeThereOnce() {
        var noHost = Self.goodRequest()
        noHost.authority = nil
        var emptyHost = Self.goodRequest()
        emptyHost.authority = ""
        let twoHosts = Self.request { $0.add(name: "host", value: "other.example.com") }
        for request in [noHost, emptyHost, twoHosts] {
            let error = Self.error(request)
            #expect(error == .missingHost)
            #expect(error?.status == 400)
        }
    }

    @Test func upgradeAndConnectionHeaders() {
        for edit in [Self.remove("Upgrade"), Self.set("Upgrade", "h2c"), Self.set("Upgrade", "websocket2")] {
            let error = Self.error(Self.request(edit))
            #expect(error == .missingUpgrade)
            #expect(error?.status == 400)
        }
        #expect(!ServerHandshake.isUpgradeRequest(Self.request(Self.remove("Upgrade")).headerFields))
        for edit in [Self.remove("Connection"), Self.set("Connection", "keep-alive"), Self.set("Connection", "upgrades")] {
            let error = Self.error(Self.request(edit))
            #expect(error == .missingConnectionUpgrade)
            #expect(error?.status == 400)
        }
    }

    @Test func badKeys() {
        let bad = [
            "not base64 at all!!!!!!!",  // 24 characters, not base64
            "dGhlIHNhbXBsZSBub25jZQ",  // no padding
            "dGhlIHNhbXBsZSBub25j",  // 15 bytes
            "dGhlIHNhbXBsZSBub25jZWE=",  // 17 bytes (24 characters)
            "dGhlIHNhbXBsZSBub25jZQ==AAAA",  // 19 bytes
            "dGhlIHNhbXBsZSBub25jZQ=A",  // bad padding
            "",
        ]
        for key in bad {
            let error = Self.error(Self.request(Self.set("Sec-WebSocket-Key", key)))
            #expect(error == .invalidKey, "\(key)")
            #expect(error?.status == 400)
        }
        #expect(Self.error(Self.request(Self.remove("Sec-WebSocket-Key"))) == .invalidKey)
        // Two keys, even equal ones.
        #expect(Self.error(Self.request { $0.add(name: "Sec-WebSocket-Key", value: Self.rfcKey) }) == .invalidKey)
        #expect(AcceptKey.isValidKey(Self.rfcKey))
        #expect(!AcceptKey.isValidKey("dGhlIHNhbXBsZSBub25j"))
    }

    @Test func versionMustBe13() {
        let missing = Self.error(Self.request(Self.remove("Sec-WebSocket-Version")))
        #expect(missing == .missingVersion)
        #expect(missing?.status == 400)
        for version in ["8", "12", "13, 8", "14"] {
            let error = Self.error(Self.request(Self.set("Sec-WebSocket-Version", version)))
            #expect(error == .unsupportedVersion(version), "\(version)")
            #expect(error?.status == 426)
            #expect(error.map(ServerHandshake.rejection(for:))?.values("Sec-WebSocket-Version") == ["13"])
        }
    }

    /// A plain HTTP request at a WebSocket endpoint is answered 426 with these headers; the
    /// version is the one a version error names.
    @Test func upgradeRequiredHeaders() {
        #expect(ServerHandshake.upgradeRequiredHeaders == [.upgrade: "websocket", .secWebSocketVersion: "13"])
        #expect(ServerHandshake.upgradeRequiredHeaders[values: .secWebSocketVersion]
                == ServerHandshake.rejection(for: .unsupportedVersion("8"))[values: .secWebSocketVersion])
        #expect(!ServerHandshake.isUpgradeRequest([.accept: "*/*"]))
    }

    @Test func headerBytesOverTheLimit() {
        let big = Self.request { $0.add(name: "Cookie", value: String(repeating: "c", count: 17_000)) }
        let error = Self.error(big)
        #expect(error?.status == 431)
        if case .headersTooLarge(let size, let limit)? = error {
            #expect(size == ServerHandshake.headerBytes(big) && size > limit && limit == 16 * 1024)
        } else {
            Issue.record("expected headersTooLarge, got \(String(describing: error))")
        }
        let good = Self.goodRequest()
        let goodSize = ServerHandshake.headerBytes(good)
        #expect(Self.error(good, maxHeaderBytes: goodSize) == nil)
        #expect(Self.error(good, maxHeaderBytes: goodSize - 1)?.status == 431)
        #expect(ServerHandshake.rejection(for: .headersTooLarge(size: 2, limit: 1)).isEmpty)
    }

    @Test func subprotocolsInClientOrderAndOneAccepted() throws {
        let upgrade = try Self.upgrade(Self.request { $0.add(name: "sec-websocket-protocol", value: "v2.bin,, mqtt") })
        #expect(upgrade.subprotocols == ["chat", "superchat", "v2.bin", "mqtt"])
        let acceptance = ServerHandshake.accept(upgrade, subprotocol: "superchat")
        #expect(acceptance.headerFields.values("Sec-WebSocket-Protocol") == ["superchat"])
        #expect(acceptance.subprotocol == "superchat")
        #expect(Self.error(Self.request(Self.set("Sec-WebSocket-Protocol", "chat, bad value"))) == .malformedSubprotocols)
    }

    @Test func malformedExtensionHeaderIsRejected() {
        let error = Self.error(Self.request(Self.set("Sec-WebSocket-Extensions", "permessage-deflate;")))
        #expect(error == .malformedExtensions("permessage-deflate;"))
        #expect(error?.status == 400)
    }

    // MARK: - Client

    static func response(for client: ClientHandshake, _ edit: (inout HTTPFields) -> Void = { _ in }) -> HTTPFields {
        var headers: HTTPFields = [
            .upgrade: "websocket",
            .connection: "Upgrade",
            .secWebSocketAccept: AcceptKey.accept(forKey: client.key),
        ]
        edit(&headers)
        return headers
    }

    static func clientError(_ client: ClientHandshake, status: HTTPResponse.Status = 101, _ headers: HTTPFields) -> HandshakeError? {
        do {
            _ = try client.validate(status: status, headers: headers)
            return nil
        } catch {
            return error
        }
    }

    @Test func clientRequestHeaders() {
        let client = ClientHandshake(host: "example.com:8080", path: "/chat?room=1", subprotocols: ["chat", "superchat"],
                                     origin: "http://o",
                                     extraHeaders: [.authorization: "Bearer x", .hostField: "evil", .secWebSocketKey: "k"],
                                     key: Self.rfcKey)
        let headers = client.request.headerFields
        #expect(client.request.authority == "example.com:8080")
        #expect(client.request.method == .get)
        #expect(client.request.path == "/chat?room=1")
        #expect(headers.values("Host").isEmpty)
        #expect(headers.values("Upgrade") == ["websocket"])
        #expect(headers.values("Connection") == ["Upgrade"])
        #expect(headers.values("Sec-WebSocket-Key") == [Self.rfcKey])
        #expect(headers.values("Sec-WebSocket-Version") == ["13"])
        #expect(headers.values("Sec-WebSocket-Protocol") == ["chat, superchat"])
        #expect(headers.values("Origin") == ["http://o"])
        #expect(headers.values("Authorization") == ["Bearer x"])
        #expect(headers.values("Sec-WebSocket-Extensions").isEmpty)
        // The request is one the server accepts.
        let upgrade = try? ServerHandshake.validate(client.request).get()
        #expect(upgrade?.subprotocols == ["chat", "superchat"])
        #expect(ClientHandshake.basicAuthorization(user: "Aladdin", password: "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    }

    @Test func clientKeyIsFreshBase64Of16Bytes() {
        let a = ClientHandshake(host: "h"), b = ClientHandshake(host: "h")
        for key in [a.key, b.key] {
            #expect(AcceptKey.isValidKey(key))
            #expect(Base64.decode(key)?.count == 16)
        }
        #expect(a.key != b.key)
        #expect(Set((0..<20).map { _ in AcceptKey.randomKey() }).count == 20)
    }

    @Test func base64() {
        #expect(Base64.encode([]) == "")
        #expect(Base64.encode(Array("f".utf8)) == "Zg==")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
        #expect(Base64.encode(Array("foo".utf8)) == "Zm9v")
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.decode("Zm9vYg==") == Array("foob".utf8))
        #expect(Base64.decode(Self.rfcKey) == Array("the sample nonce".utf8))
        for bad in ["Zm9", "Zm9v=", "Z===", "Zm=v", "Zm9v!A==", "=Zm9"] { #expect(Base64.decode(bad) == nil, "\(bad)") }
        var rng = SeededGenerator(seed: 64)
        for n in 0..<40 {
            let bytes = rng.bytes(n)
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
    }

    @Test func clientAcceptsAGood101() throws {
        let client = ClientHandshake(host: "h", subprotocols: ["chat", "superchat"], key: Self.rfcKey)
        let result = try client.validate(status: 101, headers: Self.response(for: client))
        #expect(result.subprotocol == nil)
        #expect(result.extensions.isEmpty)
        #expect(Self.response(for: client).values("Sec-WebSocket-Accept") == [Self.rfcAccept])
        // Case-insensitive tokens and names.
        var loose = HTTPFields()
        loose.add(name: "upgrade", value: "WebSocket")
        loose.add(name: "connection", value: "keep-alive, upgrade")
        loose.add(name: "sec-websocket-accept", value: Self.rfcAccept)
        loose.add(name: "Sec-WebSocket-Protocol", value: "superchat")
        #expect(try client.validate(status: 101, headers: loose).subprotocol == "superchat")
    }

    @Test func clientRejectsBadResponses() {
        let client = ClientHandshake(host: "h", subprotocols: ["chat"], key: Self.rfcKey)
        var forbidden: HTTPFields = [.contentType: "text/plain"]
        forbidden.add(name: "X-Reason", value: "no")
        #expect(Self.clientError(client, status: 403, forbidden) == .unexpectedStatus(403, forbidden))
        #expect(Self.clientError(client, status: 200, Self.response(for: client)) == .unexpectedStatus(200, Self.response(for: client)))

        #expect(Self.clientError(client, Self.response(for: client) { $0[2].value = "wrong" })
                == .invalidAccept(expected: Self.rfcAccept, received: "wrong"))
        #expect(Self.clientError(client, Self.response(for: client, Self.remove("Sec-WebSocket-Accept")))
                == .invalidAccept(expected: Self.rfcAccept, received: nil))
        #expect(Self.clientError(client, Self.response(for: client) { $0.add(name: "Sec-WebSocket-Accept", value: Self.rfcAccept) })
                == .invalidAccept(expected: Self.rfcAccept, received: Self.rfcAccept))
        #expect(Self.clientError(client, Self.response(for: client, Self.remove("Upgrade"))) == .responseMissingUpgrade)
        #expect(Self.clientError(client, Self.response(for: client, Self.set("Upgrade", "h2c"))) == .responseMissingUpgrade)
        #expect(Self.clientError(client, Self.response(for: client, Self.remove("Connection"))) == .responseMissingConnectionUpgrade)

        #expect(Self.clientError(client, Self.response(for: client) { $0.add(name: "Sec-WebSocket-Protocol", value: "other") })
                == .unofferedSubprotocol("other"))
        #expect(Self.clientError(client, Self.response(for: client) { $0.add(name: "Sec-WebSocket-Protocol", value: "chat, chat") })
                == .unofferedSubprotocol("chat, chat"))
        let none = ClientHandshake(host: "h", key: Self.rfcKey)
        #expect(Self.clientError(none, Self.response(for: none) { $0.add(name: "Sec-WebSocket-Protocol", value: "chat") })
                == .unofferedSubprotocol("chat"))
        #expect(Self.clientError(none, Self.response(for: none) { $0.add(name: "Sec-WebSocket-Extensions", value: "permessage-deflate") })
                == .unofferedExtension("permessage-deflate"))
        #expect(Self.clientError(none, Self.response(for: none) { $0.add(name: "Sec-WebSocket-Extensions", value: "x;") })
                == .malformedExtensions("x;"))
    }

    @Test func fullHandshakeBetweenClientAndServer() throws {
        let client = ClientHandshake(host: "localhost:9001", subprotocols: ["v2", "v1"])
        let upgrade = try Self.upgrade(client.request)
        #expect(upgrade.subprotocols == ["v2", "v1"])
        let acceptance = ServerHandshake.accept(upgrade, subprotocol: "v1")
        let result = try client.validate(status: 101, headers: acceptance.headerFields)
        #expect(result.subprotocol == "v1")
    }

    @Test func fieldElementsAndTokens() {
        var headers: HTTPFields = [:]
        headers.add(name: "A", value: "1")
        headers.add(name: "b", value: " x , y ,, z ")
        headers.add(name: "B", value: "w")
        #expect(headers.elements(HTTPField.Name("b")!) == ["x", "y", "z", "w"])
        #expect(headers.containsToken("Y", in: HTTPField.Name("B")!))
        #expect(!headers.containsToken("x ,", in: HTTPField.Name("B")!))
        #expect(headers.wireSize == ("A".count + 1 + 4) + ("b".count + "x , y ,, z".count + 4) + ("B".count + 1 + 4))
        var request = HTTPRequest(method: .get, scheme: nil, authority: "h:1", path: "/", headerFields: headers)
        #expect(ServerHandshake.headerBytes(request) == headers.wireSize + "Host: h:1\r\n".utf8.count)
        request.authority = nil
        #expect(ServerHandshake.headerBytes(request) == headers.wireSize)
        #expect(ServerHandshake.asksToSwitchProtocols(HTTPRequest(method: .connect, scheme: nil, authority: "h:1", path: nil)))
        #expect(ServerHandshake.asksToSwitchProtocols(HTTPRequest(method: .get, scheme: nil, authority: "h", path: "/",
                                                                  headerFields: [.upgrade: "h2c", .connection: "Upgrade"])))
        #expect(!ServerHandshake.asksToSwitchProtocols(HTTPRequest(method: .get, scheme: nil, authority: "h", path: "/",
                                                                   headerFields: [.upgrade: "h2c"])))
        #expect(HandshakeError.missingHost.description.isEmpty == false)
    }
}
