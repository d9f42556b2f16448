// The opening handshake's rules on arbitrary header blocks.
//
// Input: text. The first line is the request line (`METHOD URI HTTP/x.y`) when it has no
// colon; the other lines (split at CRLF) are `name: value` fields (a line without a colon
// is a name with an empty value).
// Checks:
// - ServerHandshake.validate (with a 2 KiB header limit) never crashes; a request that
//   validates has GET, HTTP/1.1+, one non-empty Host, the upgrade tokens, version 13 and
//   exactly one Sec-WebSocket-Key field whose value is a valid key; its 101 response (with
//   permessage-deflate and the first subprotocol accepted) satisfies a ClientHandshake with
//   the same key, and the two negotiated deflate codecs interoperate;
// - ExtensionOffer.parse on each value: what parses, serialized, parses back the same; the
//   permessage-deflate parameters of each element round-trip through `element`;
// - ClientHandshake.validate(status: 101, headers:) with a fixed key (accept
//   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=) never crashes; a response it accepts has exactly one
//   correct Sec-WebSocket-Accept and no unoffered subprotocol or extension.
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

func checkServer(_ request: ServerHandshake.Request) {
    let result = ServerHandshake.validate(request, maxHeaderBytes: 2048)
    let upgrade: ServerHandshake.UpgradeRequest
    switch result {
    case .failure(let error):
        _ = ServerHandshake.rejection(for: error)
        fuzzCheck([400, 405, 426, 431].contains(error.status), "status \(error.status)")
        _ = error.description
        return
    case .success(let value):
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
    var headers = HeaderList()
    for line in lines where !line.isEmpty {
        if let colon = line.firstIndex(of: ":") {
            headers.add(name: String(line[..<colon]), value: String(line[line.index(after: colon)...]))
        } else {
            headers.add(name: line, value: "")
        }
    }
    for field in headers { checkExtensionValue(field.value) }
    checkServer(ServerHandshake.Request(method: method, uri: uri, versionMajor: major, versionMinor: minor, headers: headers))
    checkClient(headers)
    return 0
}
