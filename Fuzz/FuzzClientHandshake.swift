// The client's handling of the server's response: ClientHandshake.validate on an arbitrary
// status and header block.
//
// Input: [config] [deflate config] [text]
//   config bits 0-1: subprotocols offered (none, chat, chat + superchat, Chat + x.y); bit 2:
//   offer permessage-deflate (deflate config: `deflateConfiguration` in
//   Support/HandshakeSupport.swift); bits 3-4: a second extension offered, `x-test`, which
//   accepts a response without parameters (none, on RSV2, on RSV1 like permessage-deflate, or
//   named permessage-deflate on RSV2, after the real one); bit 5: the key is RFC 6455 §1.2's
//   x3JJHMbDL1EzLkh9GBhXDw== (accept HSmrc0sMlYUkAGmm5OPpG2HaGWk=) instead of §1.3's.
//   text: the first line, when it has no colon, is the status line (its first token that is a
//   number is the status; 101 when there is none); the other CRLF-separated lines are
//   `name: value` fields.
// Checks:
// - validate accepts exactly when an independent reading of RFC 6455 §4.1 (and RFC 7692 §7.1
//   for permessage-deflate) does, and rejects with that reading's first broken rule, in the
//   client's order: status 101 (the error carries the status and headers), Upgrade: websocket,
//   Connection: upgrade (tokens, ASCII case-insensitive), exactly one Sec-WebSocket-Accept equal
//   to the key's after trimming, at most one subprotocol and an offered one, extension
//   responses that parse, each naming an offered extension once, no two on one RSV bit, each
//   accepted by its negotiator;
// - an accepted result has the chosen subprotocol and one extension per response element in
//   order; a permessage-deflate one interoperates with a server codec made from the response;
// - the request of every configuration passes ServerHandshake.validate, and our server's answer
//   to it (permessage-deflate and the test extension accepted when offered, the first
//   subprotocol chosen) passes validate with the same extensions.
import HTTPTypes
import NIOCore

final class ClientTestExtension: WebSocketExtension {
    let name: String
    let reservedBits: ReservedBits
    init(name: String, reservedBits: ReservedBits) { (self.name, self.reservedBits) = (name, reservedBits) }
    func decode(frame: ByteBuffer, isFinal: Bool, maxOutput: Int) throws(ExtensionError) -> ByteBuffer { frame }
    func encode(message: ByteBuffer, opcode: Opcode) throws(ExtensionError) -> (payload: ByteBuffer, reservedBits: ReservedBits)? { nil }
}

/// Offers `name` without parameters; accepts a response without parameters.
struct ClientTestNegotiator: ClientExtensionNegotiator, ServerExtensionNegotiator {
    var name: String
    var reservedBits: ReservedBits
    func offers() -> [ExtensionOffer] { [ExtensionOffer(name: name)] }
    func accept(response: ExtensionOffer) throws(HandshakeError) -> any WebSocketExtension {
        guard response.parameters.isEmpty else { throw HandshakeError.extensionRejected(name: name, reason: "parameters") }
        return ClientTestExtension(name: name, reservedBits: reservedBits)
    }
    func accept(offers: [ExtensionOffer]) -> (response: ExtensionOffer, extension: any WebSocketExtension)? {
        guard offers.contains(where: \.parameters.isEmpty) else { return nil }
        return (ExtensionOffer(name: name), ClientTestExtension(name: name, reservedBits: reservedBits))
    }
}

struct ClientFuzzConfig {
    var subprotocols: [String]
    var deflate: PerMessageDeflateConfiguration?
    var test: ClientTestNegotiator?
    var key: String

    init(_ byte: UInt8, deflateByte: UInt8) {
        subprotocols = [[], ["chat"], ["chat", "superchat"], ["Chat", "x.y"]][Int(byte & 3)]
        deflate = byte & 4 != 0 ? deflateConfiguration(deflateByte) : nil
        switch (byte >> 3) & 3 {
        case 0: test = nil
        case 1: test = ClientTestNegotiator(name: "x-test", reservedBits: .rsv2)
        case 2: test = ClientTestNegotiator(name: "x-test", reservedBits: .rsv1)
        default: test = ClientTestNegotiator(name: "permessage-deflate", reservedBits: .rsv2)
        }
        key = byte & 0x20 != 0 ? "x3JJHMbDL1EzLkh9GBhXDw==" : fixedKey
    }

    var negotiators: [any ClientExtensionNegotiator] {
        var list: [any ClientExtensionNegotiator] = []
        if let deflate { list.append(PerMessageDeflate.ClientNegotiator(configuration: deflate)) }
        if let test { list.append(test) }
        return list
    }
}

/// The first rule the response breaks, read independently of ClientHandshake; nil when valid.
func referenceClientVerdict(status: Int, headers: HTTPFields, config: ClientFuzzConfig, accept: String) -> String? {
    if status != 101 { return "unexpectedStatus" }
    if !referenceContainsToken(headers, "Upgrade", "websocket") { return "responseMissingUpgrade" }
    if !referenceContainsToken(headers, "Connection", "upgrade") { return "responseMissingConnectionUpgrade" }
    let accepts = referenceValues(headers, "Sec-WebSocket-Accept")
    if accepts.count != 1 || Array(referenceTrim(accepts[0]).utf8) != Array(accept.utf8) { return "invalidAccept" }
    let chosen = referenceElements(headers, "Sec-WebSocket-Protocol")
    if chosen.count > 1 || chosen.first.map({ !config.subprotocols.contains($0) }) ?? false { return "unofferedSubprotocol" }
    guard let responses = try? ExtensionOffer.parse(referenceValues(headers, "Sec-WebSocket-Extensions")) else {
        return "malformedExtensions"
    }
    let negotiators = config.negotiators
    var seen: [[UInt8]] = []
    var used: ReservedBits = []
    for response in responses {
        let name = asciiLower(response.name)
        guard let negotiator = negotiators.first(where: { asciiLower($0.name) == name }), !seen.contains(name) else {
            return "unofferedExtension"
        }
        if !used.isDisjoint(with: negotiator.reservedBits) { return "extensionRejected" }
        seen.append(name)
        used.formUnion(negotiator.reservedBits)
        if let deflate = negotiator as? PerMessageDeflate.ClientNegotiator {
            if referenceClientAccepts(offer: deflate.offer, response: response) == nil { return "extensionRejected" }
        } else if !response.parameters.isEmpty {
            return "extensionRejected"
        }
    }
    return nil
}

func checkResponse(status: Int, headers: HTTPFields, config: ClientFuzzConfig, sample: [UInt8]) {
    let client = ClientHandshake(host: "example.com", subprotocols: config.subprotocols, extensions: config.negotiators, key: config.key)
    let accept = AcceptKey.accept(forKey: config.key)
    let expected = referenceClientVerdict(status: status, headers: headers, config: config, accept: accept)
    let result: ClientHandshake.Result
    do {
        result = try client.validate(HTTPResponse(status: .init(code: status), headerFields: headers))
    } catch {
        fuzzCheck(verdictName(error) == expected, "rejected with \(error), the reference says \(expected ?? "valid")")
        if case .unexpectedStatus(let s, let h) = error { fuzzCheck(s.code == status && h == headers, "unexpectedStatus carries \(s)") }
        _ = error.description
        return
    }
    defer { for ext in result.extensions { ext.shutdown() } }
    fuzzCheck(expected == nil, "accepted, the reference says \(expected!)")
    fuzzCheck(result.subprotocol == referenceElements(headers, "Sec-WebSocket-Protocol").first, "subprotocol \(String(describing: result.subprotocol))")
    let responses = (try? ExtensionOffer.parse(referenceValues(headers, "Sec-WebSocket-Extensions"))) ?? []
    fuzzCheck(result.extensions.count == responses.count, "\(result.extensions.count) extensions for \(responses.count) responses")
    for (ext, response) in zip(result.extensions, responses) {
        fuzzCheck(asciiEqualIgnoringCase(ext.name, response.name), "extension \(ext.name) for \(response.name)")
        guard let deflate = ext as? PerMessageDeflate else { continue }
        let r = referenceDeflateParameters(response, isResponse: true)!
        let server = serverCodec(agreed: r)
        checkCodecsInteroperate(deflate, server, sample: sample)
        server.shutdown()
    }
}

/// Our client's request passes our server, and our server's answer passes our client.
func checkRoundTrip(config: ClientFuzzConfig) {
    let client = ClientHandshake(host: "example.com", subprotocols: config.subprotocols, extensions: config.negotiators, key: config.key)
        let upgrade: ServerHandshake.UpgradeRequest
    switch ServerHandshake.validate(client.request) {
    case .failure(let error): fuzzFail("our server rejects our client's request \(client.request.headerFields): \(error)")
    case .success(let value): upgrade = value
    }
    fuzzCheck(upgrade.key == config.key && upgrade.subprotocols == config.subprotocols, "request read as \(upgrade)")
    var serverNegotiators: [any ServerExtensionNegotiator] = []
    if let deflate = config.deflate { serverNegotiators.append(PerMessageDeflate.ServerNegotiator(configuration: deflate)) }
    // (Two server negotiators of one name would answer twice, which no client accepts.)
    if let test = config.test, test.name != PerMessageDeflate.name || config.deflate == nil { serverNegotiators.append(test) }
    let acceptance = ServerHandshake.accept(upgrade, subprotocol: upgrade.subprotocols.first, extensions: serverNegotiators)
    defer { for ext in acceptance.extensions { ext.shutdown() } }
    do {
        let result = try client.validate(HTTPResponse(status: .switchingProtocols, headerFields: acceptance.headerFields))
        defer { for ext in result.extensions { ext.shutdown() } }
        fuzzCheck(result.subprotocol == config.subprotocols.first, "subprotocol \(String(describing: result.subprotocol))")
        fuzzCheck(result.extensions.map(\.name) == acceptance.extensions.map(\.name), "extensions \(result.extensions.map(\.name))")
    } catch {
        fuzzFail("our client rejects our server's answer \(acceptance.headerFields): \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 2 else { return 0 }
    let config = ClientFuzzConfig(input[0], deflateByte: input[1])
    let text = Array(input[2...])
    var lines = splitLines(text)
    var status = 101
    if let first = lines.first, !first.contains(":") {
        lines.removeFirst()
        if let number = first.split(separator: " ").lazy.compactMap({ Int($0) }).first { status = number }
    }
    let headers = httpFields(lines)
    // A status line has three digits (HTTPResponse.Status holds 0...999).
    if (0...999).contains(status) {
        checkResponse(status: status, headers: headers, config: config, sample: Array(text.prefix(256)))
    }
    checkRoundTrip(config: config)
    return 0
}
