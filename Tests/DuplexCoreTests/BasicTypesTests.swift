import NIOCore
import Testing
@testable import DuplexCore

/// Limits, FrameHeader sizes, opcodes and reserved bits.
@Suite struct BasicTypesTests {
    @Test func limitsDefaults() {
        #expect(Limits.default.maxFrameSize == 1024 * 1024)
        #expect(Limits.default.maxMessageSize == 1024 * 1024)
        #expect(Limits.large == Limits(maxFrameSize: 16 * 1024 * 1024, maxMessageSize: 16 * 1024 * 1024))
        #expect(Limits() == .default)
        let custom = Limits(maxFrameSize: 10, maxMessageSize: 20)
        #expect(custom.maxFrameSize == 10 && custom.maxMessageSize == 20)
        let connection = Connection(role: .server)
        #expect(connection.configuration.limits == .default)
        #expect(connection.parser.maxFrameSize == Limits.default.maxFrameSize)
        let limited = Connection(role: .server, configuration: .init(limits: custom))
        #expect(limited.parser.maxFrameSize == 10)
    }

    @Test func frameHeaderEncodedSize() {
        let table: [(Int, Int)] = [(0, 2), (1, 2), (125, 2), (126, 4), (127, 4), (65535, 4), (65536, 10), (1 << 40, 10)]
        for (length, size) in table {
            #expect(FrameHeader.encodedSize(payloadLength: length, masked: false) == size, "\(length)")
            #expect(FrameHeader.encodedSize(payloadLength: length, masked: true) == size + 4, "\(length)")
            #expect(FrameHeader(opcode: .binary, payloadLength: length).encodedSize == size)
            #expect(FrameHeader(opcode: .binary, maskKey: rfcKey, payloadLength: length).encodedSize == size + 4)
            var out = ByteBuffer()
            FrameHeader(opcode: .binary, maskKey: rfcKey, payloadLength: length).write(to: &out)
            #expect(out.readableBytes == size + 4)
        }
    }

    @Test func opcodes() {
        #expect(Opcode.allDefined.map(\.rawValue) == [0x0, 0x1, 0x2, 0x8, 0x9, 0xA])
        #expect(Opcode.allDefined.filter(\.isControl) == [.close, .ping, .pong])
        for raw in UInt8(0)...0xF {
            let defined = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA].contains(raw)
            #expect((Opcode(rawValue: raw) != nil) == defined, "\(raw)")
        }
        #expect(Opcode.text.description == "text")
    }

    @Test func reservedBits() {
        #expect(ReservedBits.rsv1.rawValue == 0x40)
        #expect(ReservedBits.rsv2.rawValue == 0x20)
        #expect(ReservedBits.rsv3.rawValue == 0x10)
        // Only the RSV positions of a header byte are kept.
        #expect(ReservedBits(rawValue: 0xFF) == [.rsv1, .rsv2, .rsv3])
        #expect(ReservedBits(rawValue: 0x8F) == [])
    }

    @Test func sendErrorDescriptions() {
        let errors: [SendError] = [.notOpen, .controlPayloadTooLong(126), .invalidCloseCode(.abnormalClosure),
                                   .closeReasonTooLong(124), .invalidFragmentSize(0), .extensionFailed(.messageTooBig)]
        #expect(Set(errors.map(\.description)).count == errors.count)
        #expect(CloseFrame(code: nil).description == "no status")
        #expect(CloseFrame(code: .normalClosure, reason: "bye").description == "1000 (normal closure) \"bye\"")
    }
}

extension Opcode {
    static let allDefined: [Opcode] = [.continuation, .text, .binary, .close, .ping, .pong]
}
