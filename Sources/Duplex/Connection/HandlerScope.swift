import Logging
import NIOCore

/// The scope a server owns for its connections' async handlers: one task group, into which each
/// new connection's handler is added as a child task (as hummingbird does), so that no handler
/// runs in an unstructured task that nothing cancels.
///
/// A handler's task is cancelled when its connection ends (its ``InboundMessageQueue`` holds the
/// task) and when the server's scope is cancelled at the end of a shutdown; ``run()`` returns once
/// every handler has returned.
final class HandlerScope: Sendable {
    struct Job: Sendable {
        let executor: (any TaskExecutor)?
        let body: @Sendable () async -> Void
    }

    private let jobs: AsyncStream<Job>
    private let submitter: AsyncStream<Job>.Continuation

    init() {
        (jobs, submitter) = AsyncStream.makeStream(of: Job.self, bufferingPolicy: .unbounded)
    }

    /// Adds a handler to the scope. Returns false once the scope stopped taking handlers.
    func submit(_ job: Job) -> Bool {
        if case .terminated = submitter.yield(job) { return false }
        return true
    }

    /// Runs handlers until ``finish()`` and until every handler returned.
    func run() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask(executorPreference: job.executor) { await job.body() }
            }
        }
    }

    /// Takes no more handlers; ``run()`` returns when the running ones have.
    func finish() {
        submitter.finish()
    }

    /// Runs one connection's async handler: closes with 1000 when it returns, 1011 when it
    /// throws, and logs what it threw with the connection's id.
    static func handlerJob(socket: WebSocketConnection, queue: InboundMessageQueue, executor: (any TaskExecutor)?,
                           body: @escaping @Sendable (WebSocketConnection) async throws -> Void) -> Job {
        Job(executor: executor) {
            withUnsafeCurrentTask { task in queue.attachConsumerTask(task) }
            defer {
                queue.detachConsumerTask()
                queue.abandon()  // nobody takes its messages any more: they must not hold reads
            }
            do {
                try await body(socket)
                socket.startClose(code: .normalClosure)
            } catch {
                switch error {
                case is CancellationError, WebSocketError.closed:
                    socket.logger.debug("WebSocket handler ended", metadata: ["error": "\(error)"])
                default:
                    socket.logger.warning("WebSocket handler threw", metadata: ["error": "\(error)"])
                }
                socket.startClose(code: .internalError)
            }
        }
    }
}

/// Runs tasks on a NIO event loop: a connection's async handler started with this preference
/// runs on the connection's own loop, so a `send` or the next message needs no thread hop.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
