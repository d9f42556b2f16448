// The HTTP request path in front of the upgrade: the server's own channel pipeline (NIOHTTP1's
// request decoder and response encoder, HTTPServerHandler with its router, handshake and origin
// checks, and, after a 101, the WebSocket's handler) on an EmbeddedChannel with virtual time.
//
// Input: byte 0 chooses the configuration (bit 0: a 256-byte handshake header limit instead of
// 16 KiB; bit 1: a 64-byte body limit instead of 1 MiB); byte 1 the split of the rest into reads
// (see splitLengths); the rest are the bytes a client sends. The router has WebSocket endpoints
// only (at /echo with subprotocols and permessage-deflate, at /rooms/:room for one origin
// pattern, at /files/:name/raw); plain HTTP routes run their handlers in tasks, off the
// EmbeddedChannel's loop, so they are left to the tests.
// Checks:
// - nothing crashes, and no read or timer leaves the pipeline in error (writeInbound throws
//   nothing); every input ends: after its bytes and the handshake timeout, a connection that did
//   not upgrade is closed;
// - what the server writes before any upgrade is a sequence of well-formed HTTP/1.1 responses
//   (read by a parser of this file's own): a status line, fields, a Content-Length equal to the
//   body's length (no body for 100 and 101), a Connection field of close or keep-alive; each
//   status is one a client can expect here (100, 101, 400, 403, 404, 405, 413, 426, 431), 405 has
//   Allow: GET, 426 has Sec-WebSocket-Version: 13, a body is one line of text;
// - a response with Connection: close (and nothing else) is the last, and the connection is
//   closed once the loop has run; a connection that closed before the handshake timeout sent an
//   answer saying so (no silent close of a request); nothing after a 101 is HTTP;
// FUZZ_TRACE=1 prints each input's statuses.
// - a 101 has Upgrade: websocket, Connection: Upgrade, a Sec-WebSocket-Accept made from the
//   key of the request (one Sec-WebSocket-Key in the input, as AcceptKey computes it) and at most
//   a subprotocol of the endpoint's; what follows it parses as unmasked WebSocket frames (RSV1
//   only when permessage-deflate was accepted), with nothing after a close frame.
@testable import Duplex
import DuplexCore
import HTTPTypes
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOEmbedded

let expectedStatuses: Set<Int> = [100, 101, 400, 403, 404, 405, 413, 426, 431]
let handshakeTimeout = TimeAmount.seconds(10)

/// The router of every run: endpoints of every kind the decision path distinguishes.
func makeRouter() -> WebSocketRouter {
    let echo = WebSocketCallbacks(onMessage: { ws, data in
        if let text = data.text { ws.send(text: text) } else { ws.send(binary: data.bytes) }
    })
    var router = WebSocketRouter()
    router.webSocket("/echo", WebSocketEndpoint(subprotocols: ["chat", "superchat"],
                                                extensions: [PerMessageDeflate.ServerNegotiator()], callbacks: echo))
    router.webSocket("/rooms/:room", WebSocketEndpoint(origins: .allow([.wildcard("https://*.example.com")], requireOrigin: true),
                                                       callbacks: echo))
    router.webSocket("/files/:name/raw", WebSocketEndpoint(callbacks: echo))
    return router
}

let router = makeRouter()
/// FUZZ_TRACE=1: print what each input got (to read a reproducer's run).
let trace = getenv("FUZZ_TRACE") != nil
let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

/// One response as read from the server's bytes.
struct ParsedResponse {
    var status: Int
    var fields: [(name: String, value: String)]
    var body: [UInt8]
    /// The answer to a HEAD request: a Content-Length, no body.
    var headOnly = false

    func values(_ name: String) -> [String] {
        fields.filter { asciiEqualIgnoringCase($0.name, name) }.map(\.value)
    }
}

/// Reads HTTP/1.1 responses from `bytes` until a 101 (whose head is the last thing read) or the
/// end; returns them and the offset after what was read. Fails the run on anything malformed.
func parseResponses(_ bytes: [UInt8], inputHasHead: Bool) -> (responses: [ParsedResponse], end: Int) {
    var responses: [ParsedResponse] = []
    var at = 0
    func line() -> String {
        var i = at
        while i + 1 < bytes.count, !(bytes[i] == 0x0D && bytes[i + 1] == 0x0A) { i += 1 }
        fuzzCheck(i + 1 < bytes.count, "a response line without CRLF at \(at): \(String(decoding: bytes[at...], as: UTF8.self))")
        let text = String(decoding: bytes[at..<i], as: UTF8.self)
        at = i + 2
        return text
    }
    while at < bytes.count {
        let statusLine = line()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        fuzzCheck(parts.count >= 2 && parts[0] == "HTTP/1.1" && parts[1].utf8.count == 3, "status line \(statusLine)")
        guard let status = Int(parts[1]) else { fuzzFail("status line \(statusLine)") }
        var fields: [(name: String, value: String)] = []
        while true {
            let field = line()
            if field.isEmpty { break }
            guard let colon = field.firstIndex(of: ":") else { fuzzFail("field line \(field)") }
            fields.append((String(field[..<colon]), referenceTrim(String(field[field.index(after: colon)...]))))
        }
        var response = ParsedResponse(status: status, fields: fields, body: [])
        if status == 100 || status == 101 {
            fuzzCheck(response.values("Content-Length").isEmpty, "\(status) with a Content-Length")
            responses.append(response)
            if status == 101 { return (responses, at) }
            continue
        }
        let lengths = response.values("Content-Length")
        guard lengths.count == 1, let length = Int(lengths[0]), length >= 0 else { fuzzFail("Content-Length \(lengths) in a \(status)") }
        // The answer to a HEAD request has the Content-Length of its GET and no body: what follows
        // is the next response, or nothing. (Our bodies never start with "HTTP/".)
        let rest = bytes[at...]
        if length > 0 && (rest.isEmpty || rest.starts(with: "HTTP/1.1 ".utf8)) {
            fuzzCheck(inputHasHead, "a \(status) without its \(length)-byte body, and no HEAD request")
            response.headOnly = true
        } else {
            fuzzCheck(at + length <= bytes.count, "a \(status) with Content-Length \(length) and \(bytes.count - at) bytes")
            response.body = Array(bytes[at..<(at + length)])
            at += length
        }
        responses.append(response)
    }
    return (responses, at)
}

/// The `Sec-WebSocket-Key` values in the input's header lines, trimmed (a reference reading).
func inputKeys(_ bytes: ArraySlice<UInt8>) -> [String] {
    splitLines(Array(bytes)).compactMap { line in
        guard let colon = line.firstIndex(of: ":"), asciiEqualIgnoringCase(String(line[..<colon]), "Sec-WebSocket-Key") else { return nil }
        return referenceTrim(String(line[line.index(after: colon)...]))
    }
}

func checkResponse(_ response: ParsedResponse, isLast: Bool, input: ArraySlice<UInt8>) {
    let status = response.status
    fuzzCheck(expectedStatuses.contains(status), "unexpected status \(status)")
    if status == 100 { return }
    if status == 101 {
        fuzzCheck(response.values("Upgrade").map { asciiLower($0) } == [Array("websocket".utf8)], "101 with Upgrade \(response.values("Upgrade"))")
        fuzzCheck(response.values("Connection").map { asciiLower($0) } == [Array("upgrade".utf8)], "101 with Connection \(response.values("Connection"))")
        let accepts = response.values("Sec-WebSocket-Accept")
        let keys = inputKeys(input)
        fuzzCheck(accepts.count == 1 && keys.contains { AcceptKey.accept(forKey: $0) == accepts[0] },
                  "101 with Sec-WebSocket-Accept \(accepts) for the keys \(keys)")
        let subprotocols = response.values("Sec-WebSocket-Protocol")
        fuzzCheck(subprotocols.count <= 1 && subprotocols.allSatisfy { ["chat", "superchat"].contains($0) }, "101 with subprotocols \(subprotocols)")
        return
    }
    let connection = response.values("Connection")
    fuzzCheck(connection == ["close"] || connection == ["keep-alive"], "Connection \(connection) in a \(status)")
    fuzzCheck(connection == ["keep-alive"] || isLast, "a response after Connection: close")
    fuzzCheck(response.headOnly || response.body.last == UInt8(ascii: "\n") && !response.body.dropLast().contains(UInt8(ascii: "\n")),
              "a \(status) body that is not one line: \(String(decoding: response.body, as: UTF8.self))")
    if status == 405 { fuzzCheck(response.values("Allow") == ["GET"], "405 with Allow \(response.values("Allow"))") }
    if status == 426 { fuzzCheck(response.values("Sec-WebSocket-Version") == ["13"], "426 without Sec-WebSocket-Version: 13") }
}

/// What the server wrote after its 101: unmasked frames, RSV1 only with permessage-deflate,
/// nothing after a close frame.
func checkFrames(_ bytes: [UInt8], deflate: Bool) {
    var parser = FrameParser(role: .client, allowedReservedBits: deflate ? .rsv1 : [], maxFrameSize: Int.max)
    parser.append(ByteBuffer(bytes: bytes))
    var closed = false
    while true {
        let frame: Frame?
        do {
            frame = try parser.nextFrame()
        } catch {
            fuzzFail("the server's frames do not parse: \(error)")
        }
        guard let frame else { break }
        fuzzCheck(!closed, "a frame after the server's close frame")
        if frame.opcode == .close { closed = true }
    }
}

func drain(_ channel: EmbeddedChannel, into output: inout [UInt8]) {
    do {
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { output += buffer.readableBytesView }
    } catch {
        fuzzFail("outbound data that is not bytes: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 2 else { return 0 }
    let configuration = WebSocketServer.Configuration(
        handshakeTimeout: handshakeTimeout,
        maxHandshakeHeaderBytes: input[0] & 1 != 0 ? 256 : ServerHandshake.defaultMaxHeaderBytes,
        maxRequestBodyBytes: input[0] & 2 != 0 ? 64 : 1 << 20)
    let server = ServerContext(configuration: configuration, router: router, logger: logger)
    let bytes = input[2...]
    let loop = EmbeddedEventLoop()
    let channel = EmbeddedChannel(loop: loop)
    var output: [UInt8] = []
    do {
        try HTTPServerHandler.addHandlers(to: channel.pipeline.syncOperations, server: server, secure: false)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4000)).wait()
        var at = bytes.startIndex
        for length in splitLengths(count: bytes.count, seed: input[1]) where channel.isActive {
            try channel.writeInbound(ByteBuffer(bytes: bytes[at..<(at + length)]))
            at += length
            loop.run()
        }
        drain(channel, into: &output)
    } catch {
        fuzzFail("the pipeline failed: \(error)")
    }
    let closedEarly = !channel.isActive
    let (responses, end) = parseResponses(output, inputHasHead: bytes.firstRange(of: "HEAD".utf8) != nil)
    if trace {
        print("statuses \(responses.map(\.status)), \(output.count - end) bytes after them, closed early: \(!channel.isActive)")
    }
    for (index, response) in responses.enumerated() {
        checkResponse(response, isLast: index == responses.count - 1, input: bytes)
    }
    let upgraded = responses.last?.status == 101
    let last = responses.last(where: { $0.status != 100 })
    if let last, last.status != 101, last.values("Connection") == ["close"] {
        fuzzCheck(closedEarly, "open after a response with Connection: close")
    }
    if closedEarly && !upgraded {
        fuzzCheck(last?.values("Connection") == ["close"], "closed without an answer that says so (\(responses.count) responses)")
    }
    // The handshake timeout (and the second a 413 waits for the client) passes.
    loop.advanceTime(by: handshakeTimeout + .seconds(2))
    drain(channel, into: &output)
    if upgraded {
        let deflate = responses.last!.values("Sec-WebSocket-Extensions").contains { $0.hasPrefix("permessage-deflate") }
        checkFrames(Array(output[end...]), deflate: deflate)
    } else {
        fuzzCheck(!channel.isActive, "a connection without an upgrade is open after the handshake timeout")
        fuzzCheck(output.count == end, "\(output.count - end) bytes written after the timeout")
    }
    _ = try? channel.finish()
    // Timers still scheduled (an upgraded connection's) are dropped with the loop, so that what
    // LeakSanitizer sees left over is a leak of the server's, not of the test loop's.
    try? loop.syncShutdownGracefully()
    return 0
}
