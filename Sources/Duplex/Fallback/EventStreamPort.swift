import NIOCore
import NIOHTTP1

/// An SSE stream's channel, as a session (on any loop) writes to it.
struct EventStreamPort: Sendable {
    let channel: any Channel

    var isWritable: Bool { channel.isWritable }

    func write(_ events: [ByteBuffer]) {
        for event in events { channel.write(HTTPServerResponsePart.body(.byteBuffer(event)), promise: nil) }
        channel.flush()
    }

    /// Ends the response and the connection.
    func end() {
        let channel = self.channel
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }
}
