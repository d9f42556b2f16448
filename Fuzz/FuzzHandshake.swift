// The opening handshake's rules on arbitrary header blocks.
//
// Input: text. The first line is the request line (`METHOD URI HTTP/x.y`) when it has no
// colon; the other lines (split at CRLF) are `name: value` fields (a line without a colon
// is a name with an empty value).
// Checks:
// - ServerHandshake.validate (with a 2 KiB header limit), on the method, URI, version and
//   fields as HTTPServerHandler passes them from NIOHTTP1's request head: it accepts exactly
//   when an independent reading of RFC 6455 §4.2.1 does, and rejects with that reading's first
//   broken rule, its status (405 with Allow: GET, 426 with Sec-WebSocket-Version: 13, 431, else
//   400); the URI splits into path and query at the first "?"; a request that validates has GET, HTTP/1.1+, one non-empty Host, the upgrade tokens, version 13 and
//   exactly one Sec-WebSocket-Key field whose value is a valid key; its 101 response (with
//   permessage-deflate and the first subprotocol accepted) satisfies a ClientHandshake with
//   the same key, and the two negotiated deflate codecs interoperate;
// - ExtensionOffer.parse on each value: what parses, serialized, parses back the same; the
//   permessage-deflate parameters of each element round-trip through `element`;
// - ClientHandshake.validate(status: 101, headers:) with a fixed key (accept
//   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=) never crashes; a response it accepts has exactly one
//   correct Sec-WebSocket-Accept and no unoffered subprotocol or extension.
import NIOCore

func checkExtensionValue(_ value: String) {
    guard let offers = try? ExtensionOffer.parse([value]) else { return }
    let header = ExtensionOffer.serialize(offers)
    do {
        let again = try ExtensionOffer.parse([header])
        fuzzCheck(again == offers, "\(value) -> \(offers) -> \(header) -> \(again)")
    } catch {
        fuzzFail("serialized offers \(header) do not parse: \(error)")
    }
    for offer in offers {
        for isResponse in [false, true] {
            guard let parameters = try? PerMessageDeflateParameters.parse(offer, isResponse: isResponse) else { continue }
            let element = parameters.element
            let back = try? PerMessageDeflateParameters.parse(element, isResponse: isResponse)
            fuzzCheck(back == parameters, "parameters \(parameters) -> \(element) -> \(String(describing: back))")
        }
    }
}

/// The first rule of RFC 6455 §4.2.1 (in the order the server checks them) that `request`
/// breaks, read independently of ServerHandshake; nil for a valid upgrade request.
func referenceServerVerdict(_ request: ServerHandshake.Request) -> String? {
    let headers = request.headers
    let size = headers.fields.reduce(0) { $0 + $1.name.utf8.count + 2 + $1.value.utf8.count + 2 }
    if size > 2048 { return "headersTooLarge" }
    if Array(request.method.utf8) != Array("GET".utf8) { return "methodNotGet" }
    if request.versionMajor < 1 || request.versionMajor == 1 && request.versionMinor < 1 { return "httpVersionTooOld" }
    let hosts = referenceValues(headers, "Host")
    if hosts.count != 1 || hosts[0].utf8.isEmpty { return "missingHost" }
    if !referenceContainsToken(headers, "Upgrade", "websocket") { return "missingUpgrade" }
    if !referenceContainsToken(headers, "Connection", "upgrade") { return "missingConnectionUpgrade" }
    let keys = referenceValues(headers, "Sec-WebSocket-Key")
    if keys.count != 1 || !looksLikeKey(referenceTrim(keys[0])) { return "invalidKey" }
    let versions = referenceElements(headers, "Sec-WebSocket-Version")
    if versions.isEmpty { return "missingVersion" }
    if versions != ["13"] { return "unsupportedVersion" }
    let tokenBytes = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    if !referenceElements(headers, "Sec-WebSocket-Protocol").allSatisfy({ $0.utf8.allSatisfy(tokenBytes.contains) }) {
        return "malformedSubprotocols"
    }
    if (try? ExtensionOffer.parse(referenceValues(headers, "Sec-WebSocket-Extensions"))) == nil { return "malformedExtensions" }
    return nil
}

func checkServer(_ request: ServerHandshake.Request) {
    // The request target's parts, as the router sees them.
    if let query = request.query {
        fuzzCheck(request.path + "?" + query == request.uri && !request.path.contains("?"), "uri \(request.uri) split as \(request.path) ? \(query)")
    } else {
        fuzzCheck(request.path == request.uri && !request.uri.contains("?"), "uri \(request.uri) has path \(request.path)")
    }
    let result = ServerHandshake.validate(request, maxHeaderBytes: 2048)
    let expected = referenceServerVerdict(request)
    let upgrade: ServerHandshake.UpgradeRequest
    switch result {
    case .failure(let error):
        fuzzCheck(verdictName(error) == expected, "rejected with \(error), the reference says \(expected ?? "valid")")
        let extra = ServerHandshake.rejection(for: error)
        switch error {
        case .methodNotGet:
            fuzzCheck(error.status == 405 && extra == ["Allow": "GET"], "405 without Allow: GET")
        case .unsupportedVersion, .missingVersion:
            fuzzCheck(error.status == (expected == "missingVersion" ? 400 : 426) && extra == ["Sec-WebSocket-Version": "13"],
                      "\(error.status) for \(error) with \(extra)")
        case .headersTooLarge:
            fuzzCheck(error.status == 431 && extra.fields.isEmpty, "\(error.status) for \(error)")
        default:
            fuzzCheck(error.status == 400 && extra.fields.isEmpty, "\(error.status) for \(error)")
        }
        _ = error.description
        return
    case .success(let value):
        fuzzCheck(expected == nil, "accepted, the reference says \(expected!)")
        upgrade = value
    }
    let headers = request.headers
    fuzzCheck(request.method == "GET", "method \(request.method) accepted")
    fuzzCheck(request.versionMajor > 1 || request.versionMajor == 1 && request.versionMinor >= 1, "HTTP version accepted")
    let keys = headers.values("Sec-WebSocket-Key")
    fuzzCheck(keys.count == 1, "\(keys.count) Sec-WebSocket-Key fields accepted")
    fuzzCheck(looksLikeKey(upgrade.key) && upgrade.key == keys[0].trimmingHTTPWhitespace(),
              "invalid key \(upgrade.key) accepted")
    fuzzCheck(headers.values("Host").count == 1 && !upgrade.host.isEmpty, "Host not unique")
    fuzzCheck(ServerHandshake.isUpgradeRequest(headers), "not an upgrade request")
    fuzzCheck(headers.elements("Sec-WebSocket-Version") == ["13"], "version accepted")
    fuzzCheck(headers.wireSize <= 2048, "header limit")
    fuzzCheck(upgrade.subprotocols.allSatisfy(HTTPToken.isToken), "subprotocol not a token")
    _ = upgrade.origin
    _ = request.path
    _ = request.query

    // Accept it and check the response from the client's side.
    let subprotocol = upgrade.subprotocols.first
    let acceptance = ServerHandshake.accept(upgrade, subprotocol: subprotocol,
                                            extensions: [PerMessageDeflate.ServerNegotiator()])
    let client = ClientHandshake(host: "example.com", subprotocols: upgrade.subprotocols,
                                 extensions: [PerMessageDeflate.ClientNegotiator()], key: upgrade.key)
    let agreed: ClientHandshake.Result
    do {
        agreed = try client.validate(status: 101, headers: acceptance.headers)
    } catch {
        fuzzFail("the client rejects the server's response \(acceptance.headers): \(error)")
    }
    fuzzCheck(agreed.subprotocol == subprotocol, "subprotocol \(String(describing: agreed.subprotocol)) != \(String(describing: subprotocol))")
    fuzzCheck(agreed.extensions.count == acceptance.extensions.count, "extensions differ")
    if let serverExtension = acceptance.extensions.first, let clientExtension = agreed.extensions.first {
        let message = ByteBuffer(string: String(repeating: upgrade.key, count: 4))
        exchange(message, from: serverExtension, to: clientExtension)
        exchange(message, from: clientExtension, to: serverExtension)
        serverExtension.shutdown()
        clientExtension.shutdown()
    }
}

func exchange(_ message: ByteBuffer, from sender: any WebSocketExtension, to receiver: any WebSocketExtension) {
    do {
        guard let encoded = try sender.encode(message: message, opcode: .text) else { return }
        let decoded = try receiver.decode(frame: encoded.payload, isFinal: true, maxOutput: message.readableBytes)
        fuzzCheck(decoded == message, "negotiated codecs do not interoperate")
    } catch {
        fuzzFail("negotiated codecs: \(error)")
    }
}

func checkClient(_ headers: HeaderList) {
    let client = ClientHandshake(host: "example.com", subprotocols: ["chat", "superchat"],
                                 extensions: [PerMessageDeflate.ClientNegotiator()], key: fixedKey)
    let result: ClientHandshake.Result
    do {
        result = try client.validate(status: 101, headers: headers)
    } catch {
        _ = error.description
        return
    }
    let accepts = headers.values("Sec-WebSocket-Accept")
    fuzzCheck(accepts.count == 1 && accepts[0].trimmingHTTPWhitespace() == fixedAccept, "accept \(accepts) accepted")
    if let subprotocol = result.subprotocol { fuzzCheck(["chat", "superchat"].contains(subprotocol), "subprotocol \(subprotocol)") }
    fuzzCheck(result.extensions.count <= 1, "\(result.extensions.count) extensions")
    for ext in result.extensions { ext.shutdown() }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    var lines = splitLines(input)
    var method = "GET", uri = "/", major = 1, minor = 1
    if let first = lines.first, !first.contains(":") {
        lines.removeFirst()
        let parts = first.split(separator: " ", omittingEmptySubsequences: false)
        if parts.count > 0 { method = String(parts[0]) }
        if parts.count > 1 { uri = String(parts[1]) }
        if parts.count > 2 {
            let version = parts[2].hasPrefix("HTTP/") ? parts[2].dropFirst(5) : parts[2]
            let numbers = version.split(separator: ".", maxSplits: 1)
            major = numbers.count > 0 ? Int(numbers[0]) ?? 0 : 0
            minor = numbers.count > 1 ? Int(numbers[1]) ?? 0 : 0
        }
    }
    let headers = headerList(lines)
    for field in headers { checkExtensionValue(field.value) }
    checkServer(ServerHandshake.Request(method: method, uri: uri, versionMajor: major, versionMinor: minor, headers: headers))
    checkClient(headers)
    return 0
}
