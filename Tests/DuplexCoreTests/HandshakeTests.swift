import Testing
@testable import DuplexCore

/// The opening handshake's rules (RFC 6455 §4): ServerHandshake and ClientHandshake.
@Suite struct HandshakeTests {
    static let rfcKey = "dGhlIHNhbXBsZSBub25jZQ=="
    static let rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    /// The request of RFC 6455 §1.2.
    static func goodRequest() -> ServerHandshake.Request {
        ServerHandshake.Request(method: "GET", uri: "/chat?room=1", headers: [
            "Host": "server.example.com",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": rfcKey,
            "Origin": "http://example.com",
            "Sec-WebSocket-Protocol": "chat, superchat",
            "Sec-WebSocket-Version": "13",
        ])
    }

    static func request(_ edit: (inout HeaderList) -> Void) -> ServerHandshake.Request {
        var request = goodRequest()
        edit(&request.headers)
        return request
    }

    static func error(_ request: ServerHandshake.Request, maxHeaderBytes: Int = ServerHandshake.defaultMaxHeaderBytes)
        -> HandshakeError?
    {
        if case .failure(let error) = ServerHandshake.validate(request, maxHeaderBytes: maxHeaderBytes) { return error }
        return nil
    }

    static func upgrade(_ request: ServerHandshake.Request) throws -> ServerHandshake.UpgradeRequest {
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
        #expect(upgrade.request.path == "/chat")
        #expect(upgrade.request.query == "room=1")
        #expect(ServerHandshake.isUpgradeRequest(Self.goodRequest().headers))

        let acceptance = ServerHandshake.accept(upgrade)
        #expect(acceptance.headers.values("Upgrade") == ["websocket"])
        #expect(acceptance.headers.values("Connection") == ["Upgrade"])
        #expect(acceptance.headers.values("Sec-WebSocket-Accept") == [Self.rfcAccept])
        #expect(acceptance.headers.values("Sec-WebSocket-Protocol").isEmpty)
        #expect(acceptance.headers.values("Sec-WebSocket-Extensions").isEmpty)
        #expect(acceptance.subprotocol == nil)
        #expect(acceptance.extensions.isEmpty)
    }

    @Test func tokensAreCaseInsensitiveAndInLists() throws {
        let request = Self.request { headers in
            headers = [
                "host": "example.com:8080",
                "UPGRADE": "WebSocket",
                "connection": "keep-alive, Upgrade",
                "sec-websocket-key": "  \(Self.rfcKey) ",
                "SEC-WEBSOCKET-VERSION": "13",
            ]
        }
        let upgrade = try Self.upgrade(request)
        #expect(upgrade.key == Self.rfcKey)
        #expect(ServerHandshake.accept(upgrade).headers.first("sec-websocket-accept") == Self.rfcAccept)
        for connection in ["upgrade", "UPGRADE", "Upgrade, keep-alive", "keep-alive,upgrade", "keep-alive ,\tUpgrade"] {
            #expect(Self.error(Self.request { $0.fields[2].value = connection }) == nil, "\(connection)")
        }
        for upgrade in ["websocket", "WEBSOCKET", "h2c, websocket"] {
            #expect(Self.error(Self.request { $0.fields[1].value = upgrade }) == nil, "\(upgrade)")
        }
        // Across two header lines.
        #expect(Self.error(Self.request {
            $0.fields[2].value = "keep-alive"
            $0.add(name: "Connection", value: "Upgrade")
        }) == nil)
    }

    static func remove(_ name: String) -> (inout HeaderList) -> Void {
        { $0.fields.removeAll { $0.name.lowercased() == name.lowercased() } }
    }

    static func set(_ name: String, _ value: String) -> (inout HeaderList) -> Void {
        { headers in
            remove(name)(&headers)
            headers.add(name: name, value: value)
        }
    }

    @Test func methodMustBeGET() {
        var request = Self.goodRequest()
        request.method = "POST"
        let error = Self.error(request)
        #expect(error == .methodNotGet("POST"))
        #expect(error?.status == 405)
        #expect(error.map(ServerHandshake.rejection(for:)) == ["Allow": "GET"])
    }

    @Test func httpVersionMustBeAtLeast1_1() {
        var request = Self.goodRequest()
        request.versionMinor = 0
        #expect(Self.error(request) == .httpVersionTooOld("HTTP/1.0"))
        #expect(Self.error(request)?.status == 400)
        request.versionMajor = 0
        request.versionMinor = 9
        #expect(Self.error(request)?.status == 400)
        request.versionMajor = 2
        request.versionMinor = 0
        #expect(Self.error(request) == nil)
    }

    @Test func hostMustBeThereOnce() {
        for edit in [Self.remove("Host"), Self.set("Host", ""), { $0.add(name: "host", value: "other.example.com") }] {
            let error = Self.error(Self.request(edit))
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
        #expect(!ServerHandshake.isUpgradeRequest(Self.request(Self.remove("Upgrade")).headers))
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
        #expect(ServerHandshake.upgradeRequiredHeaders == ["Upgrade": "websocket", "Sec-WebSocket-Version": "13"])
        #expect(ServerHandshake.upgradeRequiredHeaders.values("Sec-WebSocket-Version")
                == ServerHandshake.rejection(for: .unsupportedVersion("8")).values("Sec-WebSocket-Version"))
        #expect(!ServerHandshake.isUpgradeRequest(["Host": "example.com"]))
    }

    @Test func headerBytesOverTheLimit() {
        let big = Self.request { $0.add(name: "Cookie", value: String(repeating: "c", count: 17_000)) }
        let error = Self.error(big)
        #expect(error?.status == 431)
        if case .headersTooLarge(let size, let limit)? = error {
            #expect(size == big.headers.wireSize && size > limit && limit == 16 * 1024)
        } else {
            Issue.record("expected headersTooLarge, got \(String(describing: error))")
        }
        let good = Self.goodRequest()
        #expect(Self.error(good, maxHeaderBytes: good.headers.wireSize) == nil)
        #expect(Self.error(good, maxHeaderBytes: good.headers.wireSize - 1)?.status == 431)
        #expect(ServerHandshake.rejection(for: .headersTooLarge(size: 2, limit: 1)).fields.isEmpty)
    }

    @Test func subprotocolsInClientOrderAndOneAccepted() throws {
        let upgrade = try Self.upgrade(Self.request { $0.add(name: "sec-websocket-protocol", value: "v2.bin,, mqtt") })
        #expect(upgrade.subprotocols == ["chat", "superchat", "v2.bin", "mqtt"])
        let acceptance = ServerHandshake.accept(upgrade, subprotocol: "superchat")
        #expect(acceptance.headers.values("Sec-WebSocket-Protocol") == ["superchat"])
        #expect(acceptance.subprotocol == "superchat")
        #expect(Self.error(Self.request(Self.set("Sec-WebSocket-Protocol", "chat, bad value"))) == .malformedSubprotocols)
    }

    @Test func malformedExtensionHeaderIsRejected() {
        let error = Self.error(Self.request(Self.set("Sec-WebSocket-Extensions", "permessage-deflate;")))
        #expect(error == .malformedExtensions("permessage-deflate;"))
        #expect(error?.status == 400)
    }

    // MARK: - Client

    static func response(for client: ClientHandshake, _ edit: (inout HeaderList) -> Void = { _ in }) -> HeaderList {
        var headers: HeaderList = [
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": AcceptKey.accept(forKey: client.key),
        ]
        edit(&headers)
        return headers
    }

    static func clientError(_ client: ClientHandshake, status: Int = 101, _ headers: HeaderList) -> HandshakeError? {
        do {
            _ = try client.validate(status: status, headers: headers)
            return nil
        } catch {
            return error
        }
    }

    @Test func clientRequestHeaders() {
        let client = ClientHandshake(host: "example.com:8080", subprotocols: ["chat", "superchat"], origin: "http://o",
                                     extraHeaders: ["Authorization": "Bearer x", "Host": "evil", "Sec-WebSocket-Key": "k"],
                                     key: Self.rfcKey)
        let headers = client.requestHeaders
        #expect(headers.values("Host") == ["example.com:8080"])
        #expect(headers.values("Upgrade") == ["websocket"])
        #expect(headers.values("Connection") == ["Upgrade"])
        #expect(headers.values("Sec-WebSocket-Key") == [Self.rfcKey])
        #expect(headers.values("Sec-WebSocket-Version") == ["13"])
        #expect(headers.values("Sec-WebSocket-Protocol") == ["chat, superchat"])
        #expect(headers.values("Origin") == ["http://o"])
        #expect(headers.values("Authorization") == ["Bearer x"])
        #expect(headers.values("Sec-WebSocket-Extensions").isEmpty)
        // The request is one the server accepts.
        let upgrade = try? ServerHandshake.validate(ServerHandshake.Request(method: "GET", uri: "/", headers: headers)).get()
        #expect(upgrade?.subprotocols == ["chat", "superchat"])
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
        let loose: HeaderList = ["upgrade": "WebSocket", "connection": "keep-alive, upgrade",
                                 "sec-websocket-accept": Self.rfcAccept, "Sec-WebSocket-Protocol": "superchat"]
        #expect(try client.validate(status: 101, headers: loose).subprotocol == "superchat")
    }

    @Test func clientRejectsBadResponses() {
        let client = ClientHandshake(host: "h", subprotocols: ["chat"], key: Self.rfcKey)
        let forbidden: HeaderList = ["Content-Type": "text/plain", "X-Reason": "no"]
        #expect(Self.clientError(client, status: 403, forbidden) == .unexpectedStatus(403, forbidden))
        #expect(Self.clientError(client, status: 200, Self.response(for: client)) == .unexpectedStatus(200, Self.response(for: client)))

        #expect(Self.clientError(client, Self.response(for: client) { $0.fields[2].value = "wrong" })
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
        let upgrade = try Self.upgrade(ServerHandshake.Request(method: "GET", uri: "/", headers: client.requestHeaders))
        #expect(upgrade.subprotocols == ["v2", "v1"])
        let acceptance = ServerHandshake.accept(upgrade, subprotocol: "v1")
        let result = try client.validate(status: 101, headers: acceptance.headers)
        #expect(result.subprotocol == "v1")
    }

    @Test func headerList() {
        var headers: HeaderList = ["A": "1", "b": " x , y ,, z "]
        headers.add(name: "B", value: "w")
        #expect(headers.values("a") == ["1"])
        #expect(headers.first("B") == " x , y ,, z ")
        #expect(headers.elements("b") == ["x", "y", "z", "w"])
        #expect(headers.containsToken("Y", in: "B"))
        #expect(!headers.containsToken("x ,", in: "B"))
        #expect(headers.wireSize == ("A".count + 1 + 4) + ("b".count + " x , y ,, z ".count + 4) + ("B".count + 1 + 4))
        #expect(headers == HeaderList([(name: "A", value: "1"), (name: "b", value: " x , y ,, z "), (name: "B", value: "w")]))
        #expect(headers != ["A": "1"])
        #expect(HandshakeError.missingHost.description.isEmpty == false)
    }
}
