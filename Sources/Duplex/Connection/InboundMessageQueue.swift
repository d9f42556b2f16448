import NIOConcurrencyHelpers
import NIOCore

/// The received messages of one async-API connection, waiting for their single consumer
/// (``WebSocketConnection/messages``), with high/low water marks that hold the connection's reads.
///
/// Reads are held only once the buffer reaches both its size in messages and its byte budget
/// (``WebSocketConfiguration/inboundQueueSize``, ``WebSocketConfiguration/inboundQueueBytes``):
/// a consumer that does not read (a handler that only sends) leaves the connection reading
/// within the budget, so that its pings, pongs and close are still processed. They resume once
/// the consumer took the buffer under half of either.
///
/// The producer is the connection's driver on its event loop; the consumer is any task (in a
/// server, usually the handler task running on that same loop). A message handed in while the
/// consumer waits goes straight to it; otherwise it is buffered. Once ``finish(_:)`` is called,
/// the buffered messages are still delivered, then the error (if any) is thrown once, then the
/// sequence ends.
///
/// It also holds the consumer's task while a server handler runs (see ``HandlerScope``), so
/// that the end of the connection cancels the handler.
final class InboundMessageQueue: @unchecked Sendable {
    private let lock = NIOLock()
    private var buffer = CircularBuffer<WebSocketMessage>(initialCapacity: 2)
    /// What the buffered messages cost: their payloads plus ``overhead`` each.
    private var bufferedBytes = 0
    private var waiter: UnsafeContinuation<WebSocketMessage?, any Error>?
    private var ending: (any Error)??
    private var producerPaused = false
    /// The consumer is gone for good (see ``abandon()``): messages are dropped.
    private var abandoned = false
    /// Guards the consumer task apart from `lock`: cancelling runs the task's cancellation
    /// handlers at once, and the one of ``next()`` takes `lock`.
    private let taskLock = NIOLock()
    private var consumerTask: UnsafeCurrentTask?
    private var consumerCancelled = false
    /// Told (on its event loop) when the consumer drained the buffer under the low-water mark.
    private var producer: NIOLoopBound<ConnectionDriver>?
    private let highWatermark: Int
    private let lowWatermark: Int
    private let highByteWatermark: Int
    private let lowByteWatermark: Int

    /// What a buffered message costs besides its payload (its enum, buffer header and slot), so
    /// that empty messages count too.
    static let overhead = 64

    init(size: Int, bytes: Int, producer: NIOLoopBound<ConnectionDriver>) {
        self.highWatermark = size
        self.lowWatermark = max(size / 2, 1)
        self.highByteWatermark = bytes
        self.lowByteWatermark = bytes / 2
        self.producer = producer
    }

    private static func cost(_ message: WebSocketMessage) -> Int {
        switch message {
        case .text(let string): string.utf8.count + overhead
        case .binary(let bytes): bytes.readableBytes + overhead
        }
    }

    /// Takes the oldest buffered message (under `lock`), and says whether a paused producer
    /// should now read again.
    private func popFirst() -> (message: WebSocketMessage, resume: Bool)? {
        guard let message = buffer.popFirst() else { return nil }
        bufferedBytes -= Self.cost(message)
        let resume = producerPaused && (buffer.count <= lowWatermark || bufferedBytes <= lowByteWatermark)
        if resume { producerPaused = false }
        return (message, resume)
    }

    // MARK: - Producer (the driver, on its event loop)

    /// Hands a message in. Returns false when the buffer reached both high-water marks: the
    /// producer should stop reading until it is told to resume.
    func yield(_ message: WebSocketMessage) -> Bool {
        lock.lock()
        if abandoned {
            lock.unlock()
            return true
        }
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume(returning: message)
            return true
        }
        buffer.append(message)
        bufferedBytes += Self.cost(message)
        let full = buffer.count >= highWatermark && bufferedBytes >= highByteWatermark
        if full { producerPaused = true }
        lock.unlock()
        return !full
    }

    /// No more messages: the sequence ends after the buffered ones (with `error`, if given),
    /// the producer is forgotten and a running handler task is cancelled.
    func finish(_ error: (any Error)?) {
        lock.lock()
        guard ending == nil else {
            lock.unlock()
            return
        }
        ending = .some(error)
        producer = nil
        let waiter = self.waiter
        self.waiter = nil
        if waiter != nil, error != nil { ending = .some(nil) }  // thrown to the waiter below
        lock.unlock()
        if let waiter {
            if let error { waiter.resume(throwing: error) } else { waiter.resume(returning: nil) }
        }
        taskLock.withLock {
            consumerCancelled = true
            consumerTask?.cancel()
        }
    }

    /// The consumer will never ask again (the server's handler returned or threw): the buffered
    /// messages and those still to come are dropped, and a producer paused by the buffer reads
    /// again. Without this, a handler that ends with a full buffer holds the connection's reads
    /// for good, and the peer's answer to the close that follows is never read (the connection
    /// then ends at the close timeout, uncleanly).
    func abandon() {
        lock.lock()
        abandoned = true
        buffer.removeAll()
        bufferedBytes = 0
        let producer = producerPaused ? self.producer : nil
        producerPaused = false
        lock.unlock()
        if let producer { Self.resumeReading(producer) }
    }

    // MARK: - The handler task

    func attachConsumerTask(_ task: UnsafeCurrentTask?) {
        taskLock.withLock {
            if consumerCancelled { task?.cancel() } else { consumerTask = task }
        }
    }

    func detachConsumerTask() {
        taskLock.withLock { consumerTask = nil }
    }

    // MARK: - Consumer

    func next() async throws -> WebSocketMessage? {
        lock.lock()
        if let (message, resume) = popFirst() {
            let producer = resume ? self.producer : nil
            lock.unlock()
            if let producer { Self.resumeReading(producer) }
            return message
        }
        if let ending {
            self.ending = .some(nil)  // the error is thrown once; then the sequence just ends
            lock.unlock()
            if let error = ending { throw error }
            return nil
        }
        lock.unlock()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<WebSocketMessage?, any Error>) in
                lock.lock()
                if let (message, resume) = popFirst() {
                    let producer = resume ? self.producer : nil
                    lock.unlock()
                    if let producer { Self.resumeReading(producer) }
                    continuation.resume(returning: message)
                } else if let ending {
                    self.ending = .some(nil)
                    lock.unlock()
                    if let error = ending { continuation.resume(throwing: error) } else { continuation.resume(returning: nil) }
                } else if Task.isCancelled {
                    lock.unlock()
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiter = continuation
                    lock.unlock()
                }
            }
        } onCancel: {
            lock.lock()
            let waiter = self.waiter
            self.waiter = nil
            lock.unlock()
            waiter?.resume(throwing: CancellationError())
        }
    }

    private static func resumeReading(_ producer: NIOLoopBound<ConnectionDriver>) {
        if producer.eventLoop.inEventLoop {
            producer.value.resumeReading()
        } else {
            producer.eventLoop.execute { producer.value.resumeReading() }
        }
    }
}
