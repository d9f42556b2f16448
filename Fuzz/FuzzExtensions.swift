// The Sec-WebSocket-Extensions grammar and permessage-deflate negotiation on arbitrary header
// values, in both roles.
//
// Input: [server config] [client config] [flags] [text: one Sec-WebSocket-Extensions value a
// CRLF-separated line]
//   config bytes: `deflateConfiguration` (Support/HandshakeSupport.swift); flags bit 0: the
//   server's test extension (`x-test`, accepts an offer without parameters) uses RSV1, like
//   permessage-deflate, instead of RSV2; bit 1: the test negotiator comes first.
// Checks:
// - grammar: `ExtensionOffer.parse` of the values is the concatenation of each value's parse,
//   and fails when one of them fails; the values joined with ", " parse the same; names,
//   parameter names and values are tokens; each element's `description`, and `serialize` of
//   them all, parse back to exactly the same elements;
// - server role: `ServerHandshake.accept` with the permessage-deflate negotiator (server
//   config) and the test negotiator accepts, in the negotiators' order and never two on one RSV
//   bit, exactly the extensions an independent reading says it can: permessage-deflate when an
//   offer of that name (ASCII case-insensitive) has valid parameters (RFC 7692 §7.1), answering
//   the first such offer; the response header lists exactly the responses; the deflate response
//   follows §7.1 for that offer and the configuration (no_context_takeover granted when asked
//   or configured, server window at most the offered limit and the configured one, no
//   client_max_window_bits unless offered and then at most the offered value and the
//   configured request) and the codec runs with exactly the agreed parameters; our client,
//   configured to make that same offer when it can, accepts the response, and the two codecs
//   interoperate (else a codec made from the response stands in for the client);
// - client role: the client negotiator (client config) offers what its configuration says and
//   a reference reading accepts its own offer; on each parsed element as the server's answer,
//   it accepts exactly when the reference reading of §7.1 says the answer fits its offer,
//   fails otherwise with `extensionRejected`, and an accepted codec has the agreed parameters
//   and interoperates with a server codec made from the answer.
import HTTPTypes
import NIOCore

/// An extension that changes nothing, on a configurable RSV bit (for the negotiator order and
/// the RSV rule of ServerHandshake.accept).
final class TestExtension: WebSocketExtension {
    let reservedBits: ReservedBits
    var name: String { "x-test" }
    init(reservedBits: ReservedBits) { self.reservedBits = reservedBits }
    func decode(frame: ByteBuffer, isFinal: Bool, maxOutput: Int) throws(ExtensionError) -> ByteBuffer { frame }
    func encode(message: ByteBuffer, opcode: Opcode) throws(ExtensionError) -> (payload: ByteBuffer, reservedBits: ReservedBits)? { nil }
}

/// Accepts the first `x-test` offer without parameters.
struct TestNegotiator: ServerExtensionNegotiator {
    var reservedBits: ReservedBits
    var name: String { "x-test" }
    func accept(offers: [ExtensionOffer]) -> (response: ExtensionOffer, extension: any WebSocketExtension)? {
        guard offers.contains(where: \.parameters.isEmpty) else { return nil }
        return (ExtensionOffer(name: "x-test"), TestExtension(reservedBits: reservedBits))
    }
}

let tokenBytes = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)

func isReferenceToken(_ string: String) -> Bool { !string.utf8.isEmpty && string.utf8.allSatisfy(tokenBytes.contains) }

/// The grammar checks; returns the parsed elements when every value parses.
func checkGrammar(_ values: [String]) -> [ExtensionOffer]? {
    let each = values.map { try? ExtensionOffer.parse([$0]) }
    let whole = try? ExtensionOffer.parse(values)
    guard each.allSatisfy({ $0 != nil }) else {
        fuzzCheck(whole == nil, "\(values) parse although one value does not")
        return nil
    }
    let offers = each.flatMap { $0! }
    fuzzCheck(whole == offers, "\(values) parse as \(String(describing: whole)), value by value as \(offers)")
    let joined = values.joined(separator: ", ")
    fuzzCheck((try? ExtensionOffer.parse([joined])) == offers, "joined \(joined) parses differently")
    for offer in offers {
        fuzzCheck(isReferenceToken(offer.name), "name \(offer.name) is not a token")
        for parameter in offer.parameters {
            fuzzCheck(isReferenceToken(parameter.name), "parameter \(parameter.name) is not a token")
            if let value = parameter.value { fuzzCheck(isReferenceToken(value), "value \(value) is not a token") }
        }
        fuzzCheck((try? ExtensionOffer.parse([offer.description])) == [offer], "\(offer.description) does not parse back")
    }
    let header = ExtensionOffer.serialize(offers)
    fuzzCheck((try? ExtensionOffer.parse([header])) == offers, "serialized \(header) does not parse back")
    return offers
}

/// The client configuration whose offer is `offer`, when there is one (our client always sends
/// client_max_window_bits, with a value 9...14 or without one for 15).
func clientConfiguration(making offer: PerMessageDeflateParameters) -> PerMessageDeflateConfiguration? {
    let bits: Int
    switch offer.clientMaxWindowBits {
    case .supported: bits = 15
    case .bits(let n) where (9...14).contains(n): bits = n
    default: return nil
    }
    return PerMessageDeflateConfiguration(
        noContextTakeover: offer.clientNoContextTakeover, requestPeerNoContextTakeover: offer.serverNoContextTakeover,
        maxWindowBits: bits, requestPeerMaxWindowBits: offer.serverMaxWindowBits, minimumMessageSize: 0)
}

func checkServerRole(_ offers: [ExtensionOffer], _ configuration: PerMessageDeflateConfiguration, flags: UInt8, sample: [UInt8]) {
    let testBits: ReservedBits = flags & 1 != 0 ? .rsv1 : .rsv2
    let deflateNegotiator = PerMessageDeflate.ServerNegotiator(configuration: configuration)
    let testNegotiator = TestNegotiator(reservedBits: testBits)
    let negotiators: [any ServerExtensionNegotiator] = flags & 2 != 0 ? [testNegotiator, deflateNegotiator] : [deflateNegotiator, testNegotiator]

    // The reference: which offer each negotiator can take, then the RSV rule in order.
    let deflateOffer = offers.first {
        asciiEqualIgnoringCase($0.name, "permessage-deflate") && referenceDeflateParameters($0, isResponse: false) != nil
    }
    let testAcceptable = offers.contains { asciiEqualIgnoringCase($0.name, "x-test") && $0.parameters.isEmpty }
    var expected: [String] = []
    var used: ReservedBits = []
    for negotiator in negotiators where used.isDisjoint(with: negotiator.reservedBits) {
        let acceptable = negotiator.name == "x-test" ? testAcceptable : deflateOffer != nil
        if acceptable {
            expected.append(negotiator.name)
            used.formUnion(negotiator.reservedBits)
        }
    }

    let upgrade = ServerHandshake.UpgradeRequest(
        request: HTTPRequest(method: .get, scheme: nil, authority: "example.com", path: "/"),
        key: fixedKey, subprotocols: [], extensionOffers: offers)
    let acceptance = ServerHandshake.accept(upgrade, extensions: negotiators)
    defer { for ext in acceptance.extensions { ext.shutdown() } }
    fuzzCheck(acceptance.extensions.map(\.name) == expected, "accepted \(acceptance.extensions.map(\.name)), expected \(expected)")
    let headerValues = acceptance.headerFields[values: .secWebSocketExtensions]
    guard !expected.isEmpty else {
        fuzzCheck(headerValues.isEmpty, "a Sec-WebSocket-Extensions header without an extension")
        return
    }
    guard headerValues.count == 1, let responses = try? ExtensionOffer.parse(headerValues) else {
        fuzzFail("response header \(headerValues) does not parse")
    }
    fuzzCheck(responses.map(\.name) == expected, "response header \(headerValues[0]) for \(expected)")
    guard let deflateIndex = expected.firstIndex(of: "permessage-deflate") else { return }
    let offer = referenceDeflateParameters(deflateOffer!, isResponse: false)!
    let element = responses[deflateIndex]
    let serverExtension = acceptance.extensions[deflateIndex]
    guard let r = referenceDeflateParameters(element, isResponse: true) else {
        fuzzFail("the response \(element) is not a valid permessage-deflate response")
    }
    let c = configuration
    let context = "offer \(deflateOffer!), configuration \(c), response \(element)"
    fuzzCheck(r.serverNoContextTakeover == (offer.serverNoContextTakeover || c.noContextTakeover), "server_no_context_takeover: \(context)")
    if let limit = offer.serverMaxWindowBits {
        fuzzCheck(r.serverMaxWindowBits.map { $0 <= limit } ?? false, "server_max_window_bits over the offer's limit: \(context)")
    }
    fuzzCheck(r.serverMaxWindowBits.map { $0 <= c.maxWindowBits } ?? (c.maxWindowBits == 15), "server window over the configured one: \(context)")
    if offer.clientMaxWindowBits == nil {
        fuzzCheck(r.clientMaxWindowBits == nil, "client_max_window_bits not offered but answered: \(context)")
    } else if let requested = c.requestPeerMaxWindowBits {
        fuzzCheck(bitsValue(r.clientMaxWindowBits).map { $0 <= requested } ?? false, "client window not limited as configured: \(context)")
    }
    if let b = bitsValue(r.clientMaxWindowBits), let l = bitsValue(offer.clientMaxWindowBits) {
        fuzzCheck(b <= l, "client_max_window_bits above the offered value: \(context)")
    }
    if c.requestPeerNoContextTakeover { fuzzCheck(r.clientNoContextTakeover, "client_no_context_takeover not asked: \(context)") }
    let p = codecParameters(serverExtension)
    fuzzCheck(p.localBits == (r.serverMaxWindowBits ?? 15) && p.localNCT == r.serverNoContextTakeover
              && p.peerBits == (bitsValue(r.clientMaxWindowBits) ?? 15) && p.peerNCT == r.clientNoContextTakeover,
              "server codec \(p) for \(context)")

    // The client's side of it.
    let clientExtension: any WebSocketExtension
    if let clientConfig = clientConfiguration(making: offer) {
        let negotiator = PerMessageDeflate.ClientNegotiator(configuration: clientConfig)
        fuzzCheck(negotiator.offer == offer, "configuration \(clientConfig) offers \(negotiator.offer), not \(offer)")
        do {
            clientExtension = try negotiator.accept(response: element)
        } catch {
            fuzzFail("our client rejects our server's answer: \(context): \(error)")
        }
    } else {
        clientExtension = clientCodec(agreed: r)
    }
    checkCodecsInteroperate(serverExtension, clientExtension, sample: sample)
    clientExtension.shutdown()
}

func checkClientRole(_ offers: [ExtensionOffer], _ configuration: PerMessageDeflateConfiguration, sample: [UInt8]) {
    let negotiator = PerMessageDeflate.ClientNegotiator(configuration: configuration)
    let offer = negotiator.offer
    let c = configuration
    fuzzCheck(negotiator.offers() == [offer.element], "offers \(negotiator.offers()) for \(offer)")
    fuzzCheck(referenceDeflateParameters(offer.element, isResponse: false) == offer, "the offer \(offer.element) reads differently")
    fuzzCheck(offer.clientNoContextTakeover == c.noContextTakeover && offer.serverNoContextTakeover == c.requestPeerNoContextTakeover
              && offer.serverMaxWindowBits == c.requestPeerMaxWindowBits
              && offer.clientMaxWindowBits == (c.maxWindowBits == 15 ? .supported : .bits(c.maxWindowBits)),
              "configuration \(c) offers \(offer)")
    var exchanged = 0
    for element in offers where asciiEqualIgnoringCase(element.name, "permessage-deflate") {
        let expected = referenceClientAccepts(offer: offer, response: element)
        let ext: any WebSocketExtension
        do {
            ext = try negotiator.accept(response: element)
        } catch {
            fuzzCheck(expected == nil, "the client rejects \(element) for its offer \(offer.element): \(error)")
            guard case .extensionRejected(let name, _) = error, name == "permessage-deflate" else { fuzzFail("rejected with \(error)") }
            continue
        }
        defer { ext.shutdown() }
        guard let r = expected else { fuzzFail("the client accepts \(element) for its offer \(offer.element)") }
        let p = codecParameters(ext)
        fuzzCheck(p.localBits == min(c.maxWindowBits, bitsValue(r.clientMaxWindowBits) ?? c.maxWindowBits)
                  && p.localNCT == (r.clientNoContextTakeover || c.noContextTakeover)
                  && p.peerBits == (r.serverMaxWindowBits ?? 15) && p.peerNCT == r.serverNoContextTakeover,
                  "client codec \(p) for \(element) with \(c)")
        // Two interoperation runs at most per input: each makes four zlib streams.
        guard exchanged < 2 else { continue }
        exchanged += 1
        let server = serverCodec(agreed: r)
        checkCodecsInteroperate(ext, server, sample: sample)
        server.shutdown()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 3 else { return 0 }
    let serverConfiguration = deflateConfiguration(input[0])
    let clientConfiguration = deflateConfiguration(input[1])
    let flags = input[2]
    let text = Array(input[3...])
    let values = splitLines(text)
    guard let offers = checkGrammar(values) else { return 0 }
    let sample = Array(text.prefix(512))
    checkServerRole(offers, serverConfiguration, flags: flags, sample: sample)
    checkClientRole(offers, clientConfiguration, sample: sample)
    return 0
}
