// permessage-deflate (RFC 7692) decoding of arbitrary bytes, and encode/decode round trips.
//
// Input: [config] [split seed] [bytes...]
//   config bits 0-2: window bits 8...15; bit 3: no context takeover; bits 4-5: compression
//   level (-1, 0, 1, 9); bit 6: memLevel 1 instead of 8.
// Invariants:
// - decoding: the bytes, split into frames and messages at data-derived points, decoded with a
//   64 KiB message limit: no call returns more than the `maxOutput` it was given, and the only
//   errors are `messageTooBig` and `invalidData` (an `internalError` means zlib was misused);
// - round trip: the bytes, split into messages, encoded by one codec and decoded (in
//   data-derived frames) by another with the matching parameters and a limit of exactly the
//   message's size, come back unchanged; without context takeover, a limit one byte smaller
//   fails with `messageTooBig`.
import NIOCore

struct DeflateFuzzConfig {
    var windowBits: Int
    var noContextTakeover: Bool
    var configuration: PerMessageDeflateConfiguration

    init(_ byte: UInt8) {
        windowBits = 8 + Int(byte & 7)
        noContextTakeover = byte & 8 != 0
        configuration = PerMessageDeflateConfiguration(
            noContextTakeover: noContextTakeover,
            maxWindowBits: max(windowBits, 9),
            compressionLevel: [-1, 0, 1, 9][Int(byte >> 4) & 3],
            memoryLevel: byte & 0x40 != 0 ? 1 : 8,
            minimumMessageSize: 0
        )
    }

    var sender: PerMessageDeflate {
        PerMessageDeflate(configuration: configuration, localWindowBits: windowBits, localNoContextTakeover: noContextTakeover,
                          peerWindowBits: 15, peerNoContextTakeover: false)
    }

    var receiver: PerMessageDeflate {
        PerMessageDeflate(configuration: configuration, localWindowBits: 15, localNoContextTakeover: false,
                          peerWindowBits: windowBits, peerNoContextTakeover: noContextTakeover)
    }
}

let inflateLimit = 64 * 1024

func checkDecodeError(_ error: ExtensionError) {
    switch error {
    case .messageTooBig, .invalidData: break
    case .internalError(let message): fuzzFail("inflate failed with an internal error: \(message)")
    }
}

/// Arbitrary bytes as a sequence of compressed frames.
func decodeArbitrary(_ bytes: [UInt8], _ config: DeflateFuzzConfig, seed: UInt8) {
    let receiver = config.receiver
    defer { receiver.shutdown() }
    var rng = SplitMix(seed: UInt64(seed) ^ 0xDEF1_A7E0)
    var produced = 0
    let frames = splitBuffers(bytes, seed: seed)
    for (i, frame) in frames.enumerated() {
        let isFinal = i == frames.count - 1 || rng.next() & 3 == 0
        let maxOutput = inflateLimit - produced
        do {
            let output = try receiver.decode(frame: frame, isFinal: isFinal, maxOutput: maxOutput)
            fuzzCheck(output.readableBytes <= maxOutput,
                      "decode returned \(output.readableBytes) bytes with maxOutput \(maxOutput)")
            produced += output.readableBytes
        } catch {
            checkDecodeError(error)
            return  // the connection fails here
        }
        if isFinal { produced = 0 }
    }
}

/// Encodes each message with one codec and decodes it with another.
func roundTrip(_ bytes: [UInt8], _ config: DeflateFuzzConfig, seed: UInt8) {
    let sender = config.sender, receiver = config.receiver
    defer { sender.shutdown(); receiver.shutdown() }
    var rng = SplitMix(seed: UInt64(seed) ^ 0x5EED)
    var offset = 0
    // Messages: the split lengths scaled up, so that messages are longer than frames.
    for length in splitLengths(count: bytes.count, seed: seed &* 7 &+ 3) {
        let message = Array(bytes[offset..<(offset + length)])
        offset += length
        let encoded: ByteBuffer
        do {
            guard let result = try sender.encode(message: ByteBuffer(bytes: message), opcode: .binary) else {
                fuzzCheck(message.isEmpty || config.windowBits == 8 || config.noContextTakeover,
                          "a message of \(message.count) bytes was not compressed")
                continue  // sent uncompressed: the receiver does not see it
            }
            fuzzCheck(result.reservedBits == .rsv1, "compressed without RSV1")
            encoded = result.payload
        } catch {
            fuzzFail("encode failed: \(error)")
        }
        // Decode in frames split at data-derived points.
        let wire = encoded.fuzzBytes
        var decoded: [UInt8] = []
        let frames = splitBuffers(wire, seed: UInt8(truncatingIfNeeded: rng.next()))
        let frameList = frames.isEmpty ? [ByteBuffer()] : frames
        for (i, frame) in frameList.enumerated() {
            let maxOutput = message.count - decoded.count
            do {
                let output = try receiver.decode(frame: frame, isFinal: i == frameList.count - 1, maxOutput: maxOutput)
                fuzzCheck(output.readableBytes <= maxOutput, "round trip: \(output.readableBytes) bytes with maxOutput \(maxOutput)")
                decoded += output.fuzzBytes
            } catch {
                fuzzFail("round trip: decoding a message of \(message.count) bytes (\(wire.count) compressed) failed: \(error)")
            }
        }
        fuzzCheck(decoded == message, "round trip: got \(decoded.count) bytes back instead of \(message.count)")

        // Without context takeover each message stands alone: one byte less must be refused.
        if config.noContextTakeover && !message.isEmpty {
            let strict = config.receiver
            defer { strict.shutdown() }
            do {
                let output = try strict.decode(frame: encoded, isFinal: true, maxOutput: message.count - 1)
                fuzzFail("a message of \(message.count) bytes decoded with a limit one smaller (\(output.readableBytes) bytes)")
            } catch {
                fuzzCheck(error == .messageTooBig, "limit one below the size: \(error)")
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 2 else { return 0 }
    let config = DeflateFuzzConfig(input[0])
    let bytes = Array(input[2...])
    decodeArbitrary(bytes, config, seed: input[1])
    roundTrip(bytes, config, seed: input[1])
    return 0
}
