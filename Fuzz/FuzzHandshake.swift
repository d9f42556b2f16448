// The opening handshake's rules on arbitrary header blocks.
//
// Input: text. The first line is the request line (`METHOD URI HTTP/x.y`) when it has no
// colon; the other lines (split at CRLF) are `name: value` fields (a line without a colon
// is a name with an empty value; a line whose name is not a valid field name is dropped, as
// NIO's HTTPTypes bridge drops it). As over HTTP/1.1, the first Host field is the request's
// authority; a method that is not a token skips the server's checks.
// Checks:
// - ServerHandshake.validate (with a 2 KiB header limit) never crashes; a request that
//   validates has GET, HTTP/1.1+, one non-empty Host (the authority, no Host field left), the upgrade tokens, version 13 and
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

let fixedKey = "dGhlIHNhbXBsZSBub25jZQ=="
let fixedAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

func splitLines(_ bytes: [UInt8]) -> [String] {
    var lines: [String] = []
    var start = 0
    var i = 0
    while i + 1 < bytes.count {
        if bytes[i] == 0x0D && bytes[i + 1] == 0x0A {
            lines.append(String(decoding: bytes[start..<i], as: UTF8.self))
            i += 2
            start = i
        } else {
            i += 1
        }
    }
    lines.append(String(decoding: bytes[start...], as: UTF8.self))
    return lines
}

/// Independent of Base64.decode: 22 base64 characters then "==" (16 bytes).
func looksLikeKey(_ key: String) -> Bool {
    let chars = Array(key.utf8)
    guard chars.count == 24, chars[22] == UInt8(ascii: "="), chars[23] == UInt8(ascii: "=") else { return false }
    return chars[..<22].allSatisfy { c in
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2B || c == 0x2F
    }
}

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

func checkServer(_ request: HTTPRequest, version: (major: Int, minor: Int)) {
    let result = ServerHandshake.validate(request, httpVersion: version, maxHeaderBytes: 2048)
    let upgrade: ServerHandshake.UpgradeRequest
    switch result {
    case .failure(let error):
        _ = ServerHandshake.rejection(for: error)
        fuzzCheck([400, 405, 426, 431].contains(error.status.code), "status \(error.status)")
        _ = error.description
        return
    case .success(let value):
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
    var headers = HTTPFields()
    for line in lines where !line.isEmpty {
        let colon = line.firstIndex(of: ":")
        guard let name = HTTPField.Name(String(line[..<(colon ?? line.endIndex)])) else { continue }
        headers.append(HTTPField(name: name, value: colon.map { String(line[line.index(after: $0)...]) } ?? ""))
    }
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
