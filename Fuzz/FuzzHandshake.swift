// The opening handshake's rules on arbitrary header blocks.
//
// Input: text. The first line is the request line (`METHOD URI HTTP/x.y`) when it has no
// colon; the other lines (split at CRLF) are `name: value` fields (a line without a colon
// is a name with an empty value; a line whose name is not a valid field name is dropped, as
// NIO's HTTPTypes bridge drops it). As over HTTP/1.1, the first Host field is the request's
// authority; a method that is not a token skips the server's checks.
// Checks:
// - ServerHandshake.validate (with a 2 KiB header limit), on the request as NIO's HTTPTypes
//   bridge makes it from NIOHTTP1's request head: it accepts exactly when an independent reading
//   of RFC 6455 §4.2.1 does, and rejects with that reading's first broken rule and its status
//   (405 with Allow: GET, 426 with Sec-WebSocket-Version: 13, 400 with it for a missing
//   version, 431, else 400); a request that validates has GET, HTTP/1.1+, one non-empty Host
//   (the authority, no Host field left), the upgrade tokens, version 13 and
//   exactly one Sec-WebSocket-Key field whose value is a valid key; its 101 response (with
//   permessage-deflate and the first subprotocol accepted) satisfies a ClientHandshake with
//   the same key, and the two negotiated deflate codecs interoperate;
// - ExtensionOffer.parse on each value: what parses, serialized, parses back the same; the
//   permessage-deflate parameters of each element round-trip through `element`;
// - ClientHandshake.validate on a 101 with those fields and a fixed key (accept
//   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=) never crashes; a response it accepts has exactly one
//   correct Sec-WebSocket-Accept and no unoffered subprotocol or extension.
import HTTPTypes
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
func referenceServerVerdict(_ request: HTTPRequest, version: (major: Int, minor: Int)) -> String? {
    let headers = request.headerFields
    let host = request.authority.map { 4 + 2 + $0.utf8.count + 2 } ?? 0
    let size = headers.reduce(host) { $0 + $1.name.rawName.utf8.count + 2 + $1.value.utf8.count + 2 }
    if size > 2048 { return "headersTooLarge" }
    if Array(request.method.rawValue.utf8) != Array("GET".utf8) { return "methodNotGet" }
    if version.major < 1 || version.major == 1 && version.minor < 1 { return "httpVersionTooOld" }
    if (request.authority ?? "").utf8.isEmpty || !referenceValues(headers, "Host").isEmpty { return "missingHost" }
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

func checkServer(_ request: HTTPRequest, version: (major: Int, minor: Int)) {
    let result = ServerHandshake.validate(request, httpVersion: version, maxHeaderBytes: 2048)
    let expected = referenceServerVerdict(request, version: version)
    let upgrade: ServerHandshake.UpgradeRequest
    switch result {
    case .failure(let error):
        fuzzCheck(verdictName(error) == expected, "rejected with \(error), the reference says \(expected ?? "valid")")
        let extra = ServerHandshake.rejection(for: error)
        switch error {
        case .methodNotGet:
            fuzzCheck(error.status.code == 405 && extra == [.allow: "GET"], "405 without Allow: GET")
        case .unsupportedVersion, .missingVersion:
            fuzzCheck(error.status.code == (expected == "missingVersion" ? 400 : 426) && extra == [.secWebSocketVersion: "13"],
                      "\(error.status) for \(error) with \(extra)")
        case .headersTooLarge:
            fuzzCheck(error.status.code == 431 && extra.isEmpty, "\(error.status) for \(error)")
        default:
            fuzzCheck(error.status.code == 400 && extra.isEmpty, "\(error.status) for \(error)")
        }
        _ = error.description
        return
    case .success(let value):
        fuzzCheck(expected == nil, "accepted, the reference says \(expected!)")
        upgrade = value
    }
    let headers = request.headerFields
    fuzzCheck(request.method == .get, "method \(request.method) accepted")
    fuzzCheck(version.major > 1 || version.major == 1 && version.minor >= 1, "HTTP version accepted")
    let keys = headers[values: .secWebSocketKey]
    fuzzCheck(keys.count == 1, "\(keys.count) Sec-WebSocket-Key fields accepted")
    fuzzCheck(looksLikeKey(upgrade.key) && upgrade.key == keys[0].trimmingHTTPWhitespace(),
              "invalid key \(upgrade.key) accepted")
    fuzzCheck(headers[values: .hostField].isEmpty && !upgrade.host.isEmpty, "Host not unique")
    fuzzCheck(ServerHandshake.isUpgradeRequest(headers), "not an upgrade request")
    fuzzCheck(headers.elements(.secWebSocketVersion) == ["13"], "version accepted")
    fuzzCheck(ServerHandshake.headerBytes(request) <= 2048, "header limit")
    fuzzCheck(upgrade.subprotocols.allSatisfy(HTTPToken.isToken), "subprotocol not a token")
    _ = upgrade.origin
    _ = ServerHandshake.asksToSwitchProtocols(request)

    // Accept it and check the response from the client's side.
    let subprotocol = upgrade.subprotocols.first
    let acceptance = ServerHandshake.accept(upgrade, subprotocol: subprotocol,
                                            extensions: [PerMessageDeflate.ServerNegotiator()])
    let client = ClientHandshake(host: "example.com", subprotocols: upgrade.subprotocols,
                                 extensions: [PerMessageDeflate.ClientNegotiator()], key: upgrade.key)
    let agreed: ClientHandshake.Result
    do {
        agreed = try client.validate(HTTPResponse(status: .switchingProtocols, headerFields: acceptance.headerFields))
    } catch {
        fuzzFail("the client rejects the server's response \(acceptance.headerFields): \(error)")
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

func checkClient(_ headers: HTTPFields) {
    let client = ClientHandshake(host: "example.com", subprotocols: ["chat", "superchat"],
                                 extensions: [PerMessageDeflate.ClientNegotiator()], key: fixedKey)
    let result: ClientHandshake.Result
    do {
        result = try client.validate(HTTPResponse(status: .switchingProtocols, headerFields: headers))
    } catch {
        _ = error.description
        return
    }
    let accepts = headers[values: .secWebSocketAccept]
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
    let headers = httpFields(lines)
    for field in headers { checkExtensionValue(field.value) }
    checkClient(headers)
    // Over HTTP/1.1 the first Host field is the authority.
    var fields = headers
    let authority = fields.firstIndex { $0.name == .hostField }.map { fields.remove(at: $0).value }
    if let method = HTTPRequest.Method(method) {
        let request = HTTPRequest(method: method, scheme: nil, authority: authority, path: uri, headerFields: fields)
        checkServer(request, version: (major, minor))
    }
    return 0
}
