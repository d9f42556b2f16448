// Shared helpers of the handshake and extension targets (FuzzHandshake, FuzzClientHandshake,
// FuzzExtensions): header blocks from text, reference readings of the RFC rules written
// independently of DuplexCore's (ASCII-only case folding, no shared parser), permessage-deflate
// configurations from a byte, and the interoperation check of two negotiated codecs.
import HTTPTypes
import NIOCore
#if FUZZ_NET
// Fuzz/Net's targets import DuplexCore (built by Fuzz/run.sh with -enable-testing); the others
// are compiled in one module with its sources.
@testable import DuplexCore
#endif

/// The input split at CRLF (a lone CR or LF stays in its line).
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

/// `name: value` lines as fields (a line without a colon is a name with an empty value; empty
/// lines are skipped; a line whose name is not a valid field name is dropped, as NIO's HTTPTypes
/// bridge drops it). Values keep their whitespace, as NIOHTTP1 hands them over trimmed or not.
func httpFields(_ lines: some Sequence<String>) -> HTTPFields {
    var fields = HTTPFields()
    for line in lines where !line.isEmpty {
        let colon = line.firstIndex(of: ":")
        guard let name = HTTPField.Name(String(line[..<(colon ?? line.endIndex)])) else { continue }
        fields.append(HTTPField(name: name, value: colon.map { String(line[line.index(after: $0)...]) } ?? ""))
    }
    return fields
}

// MARK: - Reference readings of the header rules

/// The key of RFC 6455 §1.3 and its accept value.
let fixedKey = "dGhlIHNhbXBsZSBub25jZQ=="
let fixedAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/// Independent of Base64.decode: 22 base64 characters then "==" (16 bytes).
func looksLikeKey(_ key: String) -> Bool {
    let chars = Array(key.utf8)
    guard chars.count == 24, chars[22] == UInt8(ascii: "="), chars[23] == UInt8(ascii: "=") else { return false }
    return chars[..<22].allSatisfy { c in
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2B || c == 0x2F
    }
}

/// The case of a handshake error, for comparing with a reference verdict.
func verdictName(_ error: HandshakeError) -> String {
    switch error {
    case .headersTooLarge: "headersTooLarge"
    case .methodNotGet: "methodNotGet"
    case .httpVersionTooOld: "httpVersionTooOld"
    case .missingHost: "missingHost"
    case .missingUpgrade: "missingUpgrade"
    case .missingConnectionUpgrade: "missingConnectionUpgrade"
    case .invalidKey: "invalidKey"
    case .missingVersion: "missingVersion"
    case .unsupportedVersion: "unsupportedVersion"
    case .malformedSubprotocols: "malformedSubprotocols"
    case .malformedExtensions: "malformedExtensions"
    case .unexpectedStatus: "unexpectedStatus"
    case .responseMissingUpgrade: "responseMissingUpgrade"
    case .responseMissingConnectionUpgrade: "responseMissingConnectionUpgrade"
    case .invalidAccept: "invalidAccept"
    case .unofferedSubprotocol: "unofferedSubprotocol"
    case .unofferedExtension: "unofferedExtension"
    case .extensionRejected: "extensionRejected"
    case .unsupportedProtocol: "unsupportedProtocol"
    case .missingPath: "missingPath"
    }
}

/// ASCII-only lowercasing (HTTP field names and tokens are case-insensitive in ASCII only: a
/// Unicode-aware `lowercased()` would fold U+212A KELVIN SIGN to "k").
func asciiLower(_ string: String) -> [UInt8] {
    string.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
}

func asciiEqualIgnoringCase(_ a: String, _ b: String) -> Bool { asciiLower(a) == asciiLower(b) }

/// The values of the fields named `name`, by ASCII case-insensitive name.
func referenceValues(_ headers: HTTPFields, _ name: String) -> [String] {
    headers.filter { asciiEqualIgnoringCase($0.name.rawName, name) }.map(\.value)
}

/// Space and tab trimmed at both ends.
func referenceTrim(_ string: String) -> String {
    var bytes = ArraySlice(string.utf8)
    while let first = bytes.first, first == 0x20 || first == 0x09 { bytes.removeFirst() }
    while let last = bytes.last, last == 0x20 || last == 0x09 { bytes.removeLast() }
    return String(decoding: bytes, as: UTF8.self)
}

/// The comma-separated list elements of every `name` field, trimmed, empty ones dropped.
func referenceElements(_ headers: HTTPFields, _ name: String) -> [String] {
    referenceValues(headers, name).flatMap { value in
        value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            .map { referenceTrim(String(decoding: $0, as: UTF8.self)) }
            .filter { !$0.isEmpty }
    }
}

func referenceContainsToken(_ headers: HTTPFields, _ name: String, _ token: String) -> Bool {
    referenceElements(headers, name).contains { asciiEqualIgnoringCase($0, token) }
}

/// RFC 7692 §7.1's parameters of one element, read on their own: each known parameter at most
/// once (names case-insensitive), the no-context-takeover ones without a value, window bits
/// exactly one of "8" ... "15"; in a response, client_max_window_bits needs a value.
func referenceDeflateParameters(_ element: ExtensionOffer, isResponse: Bool) -> PerMessageDeflateParameters? {
    let bitValues = (8...15).map(String.init)
    var result = PerMessageDeflateParameters()
    var seen: [[UInt8]] = []
    for parameter in element.parameters {
        let name = asciiLower(parameter.name)
        if seen.contains(name) { return nil }
        seen.append(name)
        switch String(decoding: name, as: UTF8.self) {
        case "server_no_context_takeover":
            if parameter.value != nil { return nil }
            result.serverNoContextTakeover = true
        case "client_no_context_takeover":
            if parameter.value != nil { return nil }
            result.clientNoContextTakeover = true
        case "server_max_window_bits":
            guard let value = parameter.value, bitValues.contains(value) else { return nil }
            result.serverMaxWindowBits = Int(value)!
        case "client_max_window_bits":
            if let value = parameter.value {
                guard bitValues.contains(value) else { return nil }
                result.clientMaxWindowBits = .bits(Int(value)!)
            } else {
                if isResponse { return nil }
                result.clientMaxWindowBits = .supported
            }
        default:
            return nil
        }
    }
    return result
}

/// Whether a client that offered `offer` must accept the server's `response` (RFC 7692 §7.1):
/// valid response parameters, a requested server_no_context_takeover granted, a requested
/// server window limit answered with one at most as large, and a client window limit no larger
/// than the one offered.
func referenceClientAccepts(offer: PerMessageDeflateParameters, response element: ExtensionOffer) -> PerMessageDeflateParameters? {
    guard let answer = referenceDeflateParameters(element, isResponse: true) else { return nil }
    if offer.serverNoContextTakeover && !answer.serverNoContextTakeover { return nil }
    if let requested = offer.serverMaxWindowBits {
        guard let bits = answer.serverMaxWindowBits, bits <= requested else { return nil }
    }
    if case .bits(let bits) = answer.clientMaxWindowBits, case .bits(let limit) = offer.clientMaxWindowBits, bits > limit {
        return nil
    }
    return answer
}

// MARK: - permessage-deflate configurations and codecs

/// A configuration from one byte: bit 0 no context takeover, bit 1 ask the peer for it,
/// bits 2-4 this side's window (15, then 9 ... 15), bits 5-7 the window asked of the peer (none,
/// then 8 ... 14). Messages of any size are compressed.
func deflateConfiguration(_ byte: UInt8) -> PerMessageDeflateConfiguration {
    let window = Int(byte >> 2) & 7
    let peer = Int(byte >> 5) & 7
    return PerMessageDeflateConfiguration(
        noContextTakeover: byte & 1 != 0,
        requestPeerNoContextTakeover: byte & 2 != 0,
        maxWindowBits: window == 0 ? 15 : 8 + window,
        requestPeerMaxWindowBits: peer == 0 ? nil : 7 + peer,
        minimumMessageSize: 0
    )
}

func bitsValue(_ bits: PerMessageDeflateParameters.ClientWindowBits?) -> Int? {
    if case .bits(let n) = bits { return n }
    return nil
}

/// A server's codec for the agreed response parameters, as any RFC 7692 server would run it.
func serverCodec(agreed r: PerMessageDeflateParameters) -> PerMessageDeflate {
    PerMessageDeflate(configuration: PerMessageDeflateConfiguration(minimumMessageSize: 0),
                      localWindowBits: r.serverMaxWindowBits ?? 15, localNoContextTakeover: r.serverNoContextTakeover,
                      peerWindowBits: bitsValue(r.clientMaxWindowBits) ?? 15, peerNoContextTakeover: r.clientNoContextTakeover)
}

/// A client's codec for the agreed response parameters.
func clientCodec(agreed r: PerMessageDeflateParameters) -> PerMessageDeflate {
    PerMessageDeflate(configuration: PerMessageDeflateConfiguration(minimumMessageSize: 0),
                      localWindowBits: bitsValue(r.clientMaxWindowBits) ?? 15, localNoContextTakeover: r.clientNoContextTakeover,
                      peerWindowBits: r.serverMaxWindowBits ?? 15, peerNoContextTakeover: r.serverNoContextTakeover)
}

/// The parameters a codec was made with, for comparing with what the handshake agreed.
func codecParameters(_ ext: any WebSocketExtension) -> (localBits: Int, localNCT: Bool, peerBits: Int, peerNCT: Bool) {
    guard let codec = ext as? PerMessageDeflate else { fuzzFail("\(ext.name) is not a PerMessageDeflate") }
    return (codec.localWindowBits, codec.localNoContextTakeover, codec.peerWindowBits, codec.peerNoContextTakeover)
}

/// Messages sent from `sender` to `receiver` and back come out unchanged, decoded with a limit of
/// exactly their size (a message the sender leaves uncompressed is passed as it is). Several
/// similar messages, so that context takeover (or its absence) matters.
func checkCodecsInteroperate(_ a: any WebSocketExtension, _ b: any WebSocketExtension, sample: [UInt8]) {
    var messages: [ByteBuffer] = [ByteBuffer(bytes: sample), ByteBuffer(bytes: sample + sample.reversed()),
                                  ByteBuffer(bytes: sample)]
    if sample.isEmpty { messages = [ByteBuffer(string: "Hello, Hello, Hello")] }
    for (sender, receiver) in [(a, b), (b, a)] {
        for message in messages {
            do {
                guard let encoded = try sender.encode(message: message, opcode: .binary) else { continue }
                fuzzCheck(encoded.reservedBits == .rsv1, "encoded with RSV bits \(encoded.reservedBits)")
                let decoded = try receiver.decode(frame: encoded.payload, isFinal: true, maxOutput: message.readableBytes)
                fuzzCheck(decoded == message, "negotiated codecs do not interoperate: \(message.readableBytes) bytes came back as \(decoded.readableBytes)")
            } catch {
                fuzzFail("negotiated codecs: \(error)")
            }
        }
    }
}
