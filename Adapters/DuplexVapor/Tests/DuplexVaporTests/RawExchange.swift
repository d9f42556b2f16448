import Foundation
import NIOCore
import NIOPosix

/// Collects what a connection receives, until `isComplete` says it has all it waits for, or the
/// connection closes.
final class Collector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var received = ByteBuffer()
    private let isComplete: @Sendable ([UInt8]) -> Bool
    let done: EventLoopPromise<[UInt8]>

    init(done: EventLoopPromise<[UInt8]>, isComplete: @escaping @Sendable ([UInt8]) -> Bool) {
        self.done = done
        self.isComplete = isComplete
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        let all = Array(received.readableBytesView)
        if isComplete(all) {
            done.succeed(all)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.succeed(Array(received.readableBytesView))
    }
}

/// Sends `request` as it is on a new connection and returns what the server answers, once
/// `isComplete` holds or the connection closed (within 10 s).
func rawExchange(port: Int, _ request: [UInt8], isComplete: @escaping @Sendable ([UInt8]) -> Bool) async throws -> [UInt8] {
    let loop = MultiThreadedEventLoopGroup.singleton.any()
    let done = loop.makePromise(of: [UInt8].self)
    let channel = try await ClientBootstrap(group: loop)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(done: done, isComplete: isComplete)) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    try await channel.writeAndFlush(ByteBuffer(bytes: request))
    let timeout = loop.scheduleTask(in: .seconds(10)) { channel.close(promise: nil) }
    defer { timeout.cancel() }
    return try await done.futureResult.get()
}

/// `rawExchange` of an HTTP request, until the whole response (its head, and the body its
/// `Content-Length` gives) has come: the response as text.
func rawHTTPExchange(port: Int, _ request: String) async throws -> String {
    let bytes = try await rawExchange(port: port, Array(request.utf8)) { received in
        let text = String(decoding: received, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return false }
        let head = text[..<end.lowerBound].lowercased()
        let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        return text[end.upperBound...].utf8.count >= length
    }
    return String(decoding: bytes, as: UTF8.self)
}
