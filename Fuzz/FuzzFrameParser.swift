// FrameParser on arbitrary bytes.
//
// Input: [config] [split seed] [wire bytes...]
//   config bit 0: role (0 server, 1 client); bit 1: RSV1 allowed; bit 2: RSV2 and RSV3 allowed;
//   bits 3-4: maxFrameSize (16 MiB, 125, 1000, 64 KiB); bit 5: maxFrameSize Int.max instead.
// Invariants: the whole input and the input split at data-derived points give the same frames,
// the same error and the same leftover; a partial payload is a prefix of the final one (the
// in-place unmasking walk); every frame obeys the role's masking rule, the allowed RSV bits,
// the control-frame rules and the size limit; frames re-encoded by FrameWriter parse back equal.
import NIOCore

struct ParsedFrame: Equatable {
    var fin: Bool
    var reservedBits: ReservedBits
    var opcode: Opcode
    var maskKey: MaskKey?
    var payload: [UInt8]

    init(_ frame: Frame) {
        fin = frame.fin
        reservedBits = frame.reservedBits
        opcode = frame.opcode
        maskKey = frame.maskKey
        payload = frame.payload.fuzzBytes
    }
}

struct ParseOutcome: Equatable {
    var frames: [ParsedFrame] = []
    var error: ProtocolError?
    var leftover = 0
}

struct ParserConfig {
    var role: Role
    var allowed: ReservedBits
    var maxFrameSize: Int

    init(_ byte: UInt8) {
        role = byte & 1 == 0 ? .server : .client
        var bits: ReservedBits = []
        if byte & 2 != 0 { bits.insert(.rsv1) }
        if byte & 4 != 0 { bits.formUnion([.rsv2, .rsv3]) }
        allowed = bits
        maxFrameSize = byte & 0x20 != 0 ? Int.max : [16 << 20, 125, 1000, 64 * 1024][Int(byte >> 3) & 3]
    }

    func makeParser() -> FrameParser {
        FrameParser(role: role, allowedReservedBits: allowed, maxFrameSize: maxFrameSize)
    }
}

/// Parses `chunks` one after the other, draining frames after each; checks partial payloads.
func parse(_ chunks: [ByteBuffer], _ config: ParserConfig, checkPartial: Bool) -> ParseOutcome {
    var parser = config.makeParser()
    var outcome = ParseOutcome()
    var prefix: [UInt8] = []  // unmasked bytes of the pending frame seen so far
    do {
        for chunk in chunks {
            parser.append(chunk)
            while let frame = try parser.nextFrame() {
                let parsed = ParsedFrame(frame)
                if checkPartial {
                    fuzzCheck(parsed.payload.starts(with: prefix),
                              "partial payload \(prefix) is not a prefix of the frame's \(parsed.payload)")
                    prefix = []
                }
                outcome.frames.append(parsed)
            }
            if checkPartial, let header = try parser.nextHeader() {
                let available = parser.availablePayloadCount
                fuzzCheck(available < header.payloadLength,
                          "the payload is complete but no frame came out")
                fuzzCheck(available >= prefix.count, "available payload shrank from \(prefix.count) to \(available)")
                // Only the new bytes (linear in the input); the final frame is checked against all of them.
                let new = parser.withAvailablePayload(from: prefix.count) { Array($0) }
                fuzzCheck(new.count == available - prefix.count, "withAvailablePayload gave \(new.count) new bytes")
                prefix += new
            }
        }
    } catch {
        outcome.error = error
    }
    outcome.leftover = outcome.error == nil ? parser.bufferedBytes : 0
    return outcome
}

func checkFrameRules(_ frames: [ParsedFrame], _ config: ParserConfig) {
    for frame in frames {
        fuzzCheck(frame.reservedBits.isSubset(of: config.allowed), "RSV bits \(frame.reservedBits) not allowed")
        fuzzCheck((frame.maskKey != nil) == (config.role == .server), "masking rule broken for \(config.role)")
        fuzzCheck(frame.payload.count <= config.maxFrameSize, "frame of \(frame.payload.count) over the limit")
        if frame.opcode.isControl {
            fuzzCheck(frame.fin, "fragmented control frame accepted")
            fuzzCheck(frame.payload.count <= 125, "control frame of \(frame.payload.count) bytes accepted")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    guard input.count >= 2 else { return 0 }
    let config = ParserConfig(input[0])
    let wire = Array(input[2...])

    let whole = parse([ByteBuffer(bytes: wire)], config, checkPartial: false)
    let split = parse(splitBuffers(wire, seed: input[1]), config, checkPartial: true)
    fuzzCheck(whole == split, "whole and split parses differ:\n whole \(whole)\n split \(split)")
    checkFrameRules(whole.frames, config)
    if whole.error == nil {
        let consumed = whole.frames.reduce(0) {
            $0 + FrameHeader.encodedSize(payloadLength: $1.payload.count, masked: $1.maskKey != nil) + $1.payload.count
        }
        // Non-minimal length encodings are accepted, so the wire may be longer than the shortest form.
        fuzzCheck(consumed + whole.leftover <= wire.count, "frames take more bytes than the input has")
    }

    // Round trip: the frames, written again (re-masked with their keys), parse back the same.
    var encoded = ByteBuffer()
    for frame in whole.frames {
        FrameWriter.write(fin: frame.fin, reservedBits: frame.reservedBits, opcode: frame.opcode,
                          maskKey: frame.maskKey, payload: ByteBuffer(bytes: frame.payload), to: &encoded)
    }
    let again = parse([encoded], config, checkPartial: false)
    fuzzCheck(again.error == nil && again.leftover == 0 && again.frames == whole.frames,
              "re-encoded frames do not parse back: \(again)")
    return 0
}
