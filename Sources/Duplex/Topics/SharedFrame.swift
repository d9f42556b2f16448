import DuplexCore
import NIOCore

/// One published message, serialized once: the complete unmasked frame (header and payload)
/// that every subscriber without a message-transforming extension gets as the very same bytes
/// (a `ByteBuffer` shares its storage: no copy per subscriber), and the payload for the others
/// (permessage-deflate compresses per connection).
struct SharedFrame: Sendable {
    let opcode: Opcode
    let payload: ByteBuffer
    let frame: ByteBuffer

    init(_ message: WebSocketMessage) {
        switch message {
        case .text(let text): self.init(opcode: .text, payload: ByteBuffer(string: text))
        case .binary(let bytes): self.init(opcode: .binary, payload: bytes)
        }
    }

    init(opcode: Opcode, payload: ByteBuffer) {
        self.opcode = opcode
        self.payload = payload
        var frame = ByteBuffer()
        FrameWriter.write(fin: true, opcode: opcode, maskKey: nil, payload: payload, to: &frame)
        self.frame = frame
    }
}
