// A server-role Connection fed hostile bytes, with small limits, optionally with
// permessage-deflate negotiated.
//
// Input: [config] [split seed] [wire bytes (masked client frames)...]
//   config bit 0: permessage-deflate negotiated (RSV1 allowed); bit 1: automatic pongs;
//   bits 2-3: limits (frame/message: 64K/64K, 125/1000, 1000/4096, 64K/1000; Int.max for both
//   instead of 64K/64K when the split seed's top bit is set);
//   bit 4: echo every message (fragmented at a data-derived size) and answer every pong with a
//   ping or a pong (send(text:), send(binary:), ping, pong); bit 5: the server starts the
//   closing handshake after the first event; bits 6-7: deflate no-context-takeover for the
//   client's and the server's compressor.
// Invariants: no event after `.failed` or `.close`; text messages are valid UTF-8; messages
// (after inflating) never exceed maxMessageSize; a failure queues a close frame with its close
// code and leaves the connection closed; the outbound bytes parse as valid unmasked frames
// with a client-role FrameParser, nothing after a close frame; and a client Connection (with
// the client's side of the negotiated extension) reads from them exactly the expected pongs,
// echoes and close frames.
import NIOCore

struct ConnectionFuzzConfig {
    var deflate: Bool
    var autoPong: Bool
    var limits: Limits
    var echo: Bool
    var closeAfterFirstEvent: Bool
    var clientNoContextTakeover: Bool
    var serverNoContextTakeover: Bool

    init(_ byte: UInt8, seed: UInt8) {
        deflate = byte & 1 != 0
        autoPong = byte & 2 != 0
        var (frame, message) = [(64 * 1024, 64 * 1024), (125, 1000), (1000, 4096), (64 * 1024, 1000)][Int(byte >> 2) & 3]
        // No limit at all (Int.max, which a user may configure as "unlimited"): arithmetic near
        // the top of Int. Memory stays bounded by the input.
        if byte & 0x0C == 0 && seed & 0x80 != 0 { (frame, message) = (Int.max, Int.max) }
        limits = Limits(maxFrameSize: frame, maxMessageSize: message)
        echo = byte & 0x10 != 0
        closeAfterFirstEvent = byte & 0x20 != 0
        clientNoContextTakeover = byte & 0x40 != 0
        serverNoContextTakeover = byte & 0x80 != 0
    }
}

/// The server's and the client's extension, negotiated through the real negotiators.
func negotiateDeflate(_ config: ConnectionFuzzConfig, seed: UInt8) -> (server: any WebSocketExtension, client: any WebSocketExtension) {
    let clientConfiguration = PerMessageDeflateConfiguration(
        noContextTakeover: config.clientNoContextTakeover,
        maxWindowBits: 9 + Int(seed % 7),
        requestPeerMaxWindowBits: seed & 0x80 != 0 ? 8 + Int((seed >> 3) & 7) : nil,
        minimumMessageSize: Int(seed >> 6) * 8
    )
    let serverConfiguration = PerMessageDeflateConfiguration(
        noContextTakeover: config.serverNoContextTakeover,
        maxWindowBits: 15 - Int((seed >> 4) % 7),
        requestPeerMaxWindowBits: seed & 0x40 != 0 ? 8 + Int(seed & 7) : nil,
        minimumMessageSize: 0
    )
    let clientNegotiator = PerMessageDeflate.ClientNegotiator(configuration: clientConfiguration)
    let serverNegotiator = PerMessageDeflate.ServerNegotiator(configuration: serverConfiguration)
    guard let (response, serverExtension) = serverNegotiator.accept(offers: clientNegotiator.offers()) else {
        fuzzFail("the server declined the client's permessage-deflate offer \(clientNegotiator.offers())")
    }
    do {
        let header = ExtensionOffer.serialize([response])
        let parsed = try ExtensionOffer.parse([header])
        fuzzCheck(parsed == [response], "the response header \(header) does not parse back")
        return (serverExtension, try clientNegotiator.accept(response: parsed[0]))
    } catch {
        fuzzFail("the client rejected the server's answer \(response): \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 2 else { return 0 }
    let config = ConnectionFuzzConfig(input[0], seed: input[1])
    let seed = input[1]
    let wire = Array(input[2...])
    var rng = SplitMix(seed: UInt64(seed) &+ 0xC0FFEE)

    var serverExtensions: [any WebSocketExtension] = []
    var clientExtensions: [any WebSocketExtension] = []
    if config.deflate {
        let (server, client) = negotiateDeflate(config, seed: seed)
        serverExtensions = [server]
        clientExtensions = [client]
    }
    var server = Connection(role: .server, configuration: .init(limits: config.limits, autoPong: config.autoPong),
                            extensions: serverExtensions)
    let maxMessage = config.limits.maxMessageSize

    var expected: [ConnectionEvent] = []  // what the client must read from the outbound bytes
    var outbound = ByteBuffer()
    var ended = false
    var events = 0
    var closeRequested = false

    for chunk in splitBuffers(wire, seed: seed) {
        server.receive(chunk)
        while true {
            let stateBefore = server.state
            guard let event = server.nextEvent() else { break }
            events += 1
            fuzzCheck(!ended, "event \(event) after the connection ended")
            // Every frame a server accepts takes at least 6 bytes (2 + mask key).
            fuzzCheck(events <= wire.count / 6 + 1, "\(events) events from \(wire.count) bytes")
            switch event {
            case .text(let message), .binary(let message):
                fuzzCheck(message.readableBytes <= maxMessage, "message of \(message.readableBytes) bytes over the limit \(maxMessage)")
                let opcode: Opcode
                if case .text = event {
                    fuzzCheck(String(validating: message.readableBytesView, as: UTF8.self) != nil, "text event is not valid UTF-8")
                    opcode = .text
                } else {
                    opcode = .binary
                }
                if config.echo {
                    let fragmentSize = rng.next() & 1 == 0 ? nil : Int(rng.next() % 200) + 1
                    do {
                        switch rng.next() % 3 {
                        case 0 where opcode == .text: try server.send(text: String(buffer: message), fragmentSize: fragmentSize)
                        case 1 where opcode == .binary: try server.send(binary: message, fragmentSize: fragmentSize)
                        default: try server.send(opcode, payload: message, fragmentSize: fragmentSize)
                        }
                        fuzzCheck(stateBefore == .open, "send succeeded in state \(stateBefore)")
                        expected.append(opcode == .text ? .text(message) : .binary(message))
                    } catch {
                        fuzzCheck(error == .notOpen && stateBefore != .open, "send failed: \(error)")
                    }
                }
            case .ping(let payload):
                fuzzCheck(payload.readableBytes <= 125, "ping of \(payload.readableBytes) bytes")
                if config.autoPong && stateBefore == .open { expected.append(.pong(payload)) }
            case .pong(let payload):
                fuzzCheck(payload.readableBytes <= 125, "pong of \(payload.readableBytes) bytes")
                if config.echo {
                    // Answer a pong with a ping, or an unsolicited pong, with the same payload.
                    let ping = rng.next() & 1 == 0
                    do {
                        if ping { try server.ping(payload) } else { try server.pong(payload) }
                        fuzzCheck(stateBefore == .open, "ping/pong sent in state \(stateBefore)")
                        // The client answers a ping with its own pong and reports the ping.
                        expected.append(ping ? .ping(payload) : .pong(payload))
                    } catch {
                        fuzzCheck(error == .notOpen && stateBefore != .open, "ping/pong failed: \(error)")
                    }
                }
            case .close(let frame):
                ended = true
                fuzzCheck(server.closeReceived == frame, "closeReceived differs from the event")
                fuzzCheck(server.state == .closed && server.shouldCloseTransport, "not closed after the peer's close")
                if let code = frame.code { fuzzCheck(code.isValidOnWire, "close code \(code) accepted") }
                fuzzCheck(frame.code != nil || frame.reason.isEmpty, "a reason without a code")
                if stateBefore == .open { expected.append(.close(CloseFrame(code: frame.code))) }
            case .failed(let error):
                ended = true
                fuzzCheck(server.failure == error, "failure differs from the event")
                fuzzCheck(server.state == .closed && server.shouldCloseTransport, "not closed after a failure")
                fuzzCheck([1002, 1007, 1009, 1010, 1011].contains(error.closeCode.rawValue), "failure with close code \(error.closeCode)")
                if stateBefore == .open {
                    guard let sent = server.closeSent else { fuzzFail("no close frame queued on failure") }
                    fuzzCheck(sent.code == error.closeCode, "close frame \(sent) for error \(error)")
                    expected.append(.close(sent))
                }
                _ = server.closeResult
            }
            if config.closeAfterFirstEvent && !closeRequested {
                closeRequested = true
                let wasOpen = server.state == .open
                do {
                    try server.close(code: .normalClosure, reason: "bye")
                } catch {
                    fuzzFail("close failed: \(error)")
                }
                if wasOpen {
                    fuzzCheck(server.state == .closing, "not closing after close()")
                    expected.append(.close(CloseFrame(code: .normalClosure, reason: "bye")))
                }
            }
        }
        fuzzCheck(server.nextEvent() == nil, "a second nextEvent() gave an event")
        if var bytes = server.takeOutbound() { outbound.writeBuffer(&bytes) }
        fuzzCheck(!server.hasOutbound, "outbound left after takeOutbound()")
    }
    _ = server.isCleanlyClosed
    server.transportClosed()
    fuzzCheck(server.state == .closed && server.nextEvent() == nil, "events after transportClosed()")

    // The outbound bytes: valid unmasked frames, nothing after a close frame.
    var parser = FrameParser(role: .client, allowedReservedBits: config.deflate ? .rsv1 : [], maxFrameSize: Int.max)
    parser.append(outbound)
    var sawClose = false
    do {
        while let frame = try parser.nextFrame() {
            fuzzCheck(!sawClose, "a frame after the close frame")
            if frame.opcode == .close { sawClose = true }
        }
    } catch {
        fuzzFail("outbound bytes do not parse: \(error)")
    }
    fuzzCheck(parser.bufferedBytes == 0, "\(parser.bufferedBytes) outbound bytes are not a whole frame")

    // A client reads them back.
    var client = Connection(role: .client, extensions: clientExtensions)
    client.receive(outbound)
    var seen: [ConnectionEvent] = []
    while let event = client.nextEvent() { seen.append(event) }
    fuzzCheck(seen == expected, "the client read \(seen)\n expected \(expected)")
    client.transportClosed()
    return 0
}
