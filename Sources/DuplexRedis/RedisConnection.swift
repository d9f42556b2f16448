import NIOCore
import NIOPosix

/// One connection to a Redis server over SwiftNIO, RESP2: commands are pipelined (sent without
/// waiting, answered in order), and on a subscribed connection `message` arrays are push
/// messages handed to `onPush`. Only what publish/subscribe needs.
public final class RedisConnection: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Connects to `host:port`.
    /// - Parameters:
    ///   - onPush: a subscribed connection's messages (`channel`, `payload`), on the connection's
    ///     event loop, in order.
    ///   - onClose: once, when the connection ends, with why (not after ``close()``).
    public static func connect(
        host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        connectTimeout: TimeAmount = .seconds(5), maxBulkLength: Int = 64 << 20,
        onPush: @escaping @Sendable (ByteBuffer, ByteBuffer) -> Void = { _, _ in },
        onClose: @escaping @Sendable (any Error) -> Void = { _ in }
    ) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoder = RESPDecoder(maxBulkLength: maxBulkLength, maxArrayCount: 1 << 20, maxDepth: 4)
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(decoder))
                    try channel.pipeline.syncOperations.addHandler(RedisHandler(onPush: onPush, onClose: onClose))
                }
            }
            .connect(host: host, port: port)
            .get()
        return RedisConnection(channel: channel)
    }

    /// Sends `command` and waits for its answer (a ``RESPValue/error(_:)`` answer throws
    /// ``RedisError``).
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RESPValue {
        try await send([command])[0]
    }

    /// Sends `commands` in one write and waits for their answers, in order.
    public func send(_ commands: [RedisCommand]) async throws -> [RESPValue] {
        let promises = commands.map { _ in channel.eventLoop.makePromise(of: RESPValue.self) }
        // On a closed channel the write fails before the handler sees it: fail the answers too.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            for promise in promises { promise.fail(error) }
        }
        channel.writeAndFlush(RedisHandler.Request(commands: commands, promises: promises), promise: written)
        var answers: [RESPValue] = []
        answers.reserveCapacity(commands.count)
        for promise in promises {
            let answer = try await promise.futureResult.get()
            if case .error(let message) = answer { throw RedisError(message) }
            answers.append(answer)
        }
        return answers
    }

    /// Closes the connection; `onClose` is not called.
    public func close() async {
        channel.pipeline.fireUserInboundEventTriggered(RedisHandler.Closing())
        try? await channel.close()
    }
}

/// Redis answered a command with an error (`-ERR ...`, `-WRONGPASS ...`), or the connection
/// ended before the answer.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// The server's message, or why there was none.
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "redis: \(message)" }
}

/// Matches answers to commands in order; `message` arrays are pushes.
final class RedisHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = Request
    typealias OutboundOut = ByteBuffer

    struct Request {
        let commands: [RedisCommand]
        let promises: [EventLoopPromise<RESPValue>]
    }

    /// The user closes: no `onClose`.
    struct Closing {}

    private let onPush: @Sendable (ByteBuffer, ByteBuffer) -> Void
    private let onClose: @Sendable (any Error) -> Void
    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()
    private var closing = false
    private var failure: (any Error)?

    init(onPush: @escaping @Sendable (ByteBuffer, ByteBuffer) -> Void, onClose: @escaping @Sendable (any Error) -> Void) {
        self.onPush = onPush
        self.onClose = onClose
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            for waiter in request.promises { waiter.fail(failure) }
            promise?.fail(failure)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: 64 * request.commands.count)
        for command in request.commands { command.write(to: &buffer) }
        waiting.append(contentsOf: request.promises)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        if case .array(let parts?) = value, parts.count == 3, parts[0].string == "message",
           case .bulkString(let channel?) = parts[1], case .bulkString(let payload?) = parts[2] {
            onPush(channel, payload)
            return
        }
        guard let waiter = waiting.popFirst() else {
            fail(context: context, RedisError("an answer to no command: \(value)"))
            return
        }
        waiter.succeed(value)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Closing { closing = true }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        end(RedisError("connection closed"))
        context.fireChannelInactive()
    }

    private func fail(context: ChannelHandlerContext, _ error: any Error) {
        end(error)
        context.close(promise: nil)
    }

    private func end(_ error: any Error) {
        guard failure == nil else { return }
        failure = error
        while let waiter = waiting.popFirst() { waiter.fail(error) }
        if !closing { onClose(error) }
    }
}
