import DuplexCore
import NIOCore

/// How the application consumes a connection.
enum WebSocketApplication: Sendable {
    /// An async function per connection, run in the server's ``HandlerScope`` (server endpoints).
    case task(@Sendable (WebSocketConnection) async throws -> Void)
    /// Callbacks on the event loop (hottest paths).
    case callbacks(WebSocketCallbacks)
    /// The ``WebSocketConnection`` is handed to a caller who iterates it (the client's `connect`).
    case handOff(EventLoopPromise<WebSocketConnection>)
}

/// The application side of one connection: delivers messages and the end of the connection to
/// callbacks or to the async message queue, and makes the Sendable ``WebSocketConnection`` handle only
/// when someone needs it (a callback endpoint that never asks for `socket` never pays for it).
///
/// A class, not a struct in the driver: callbacks it calls may re-enter it (`ws.socket` in
/// `onOpen` or `onClose`).
final class ApplicationBridge {
    let application: WebSocketApplication
    /// The handle of this connection, once made; dropped when the connection ends (it holds the
    /// driver, which must not hold it back once closed).
    private(set) var socket: WebSocketConnection?
    /// The received messages of the async API.
    private(set) var queue: InboundMessageQueue?

    init(application: WebSocketApplication) {
        self.application = application
    }

    /// The handle, made on first use.
    func socket(for driver: ConnectionDriver) -> WebSocketConnection {
        if let socket { return socket }
        let made = WebSocketConnection(driver: driver, queue: queue)
        // A closed connection's handle is made for the caller but not kept: it would hold the driver.
        if !driver.finished { socket = made }
        return made
    }

    /// The connection opened: start the application.
    func open(_ driver: ConnectionDriver) {
        switch application {
        case .task(let body):
            let queue = makeQueue(driver)
            let socket = socket(for: driver)
            let scope = driver.settings.scope
            let job = HandlerScope.handlerJob(socket: socket, queue: queue, executor: driver.handlerExecutor, body: body)
            if scope?.submit(job) != true {
                // No scope (or it stopped taking handlers: the server is shutting down).
                driver.startClose(code: .goingAway, reason: "server shutting down")
            }
        case .callbacks(let callbacks):
            callbacks.onOpen(EventLoopWebSocket(driver: driver))
        case .handOff(let promise):
            _ = makeQueue(driver)
            promise.succeed(socket(for: driver))
        }
    }

    private func makeQueue(_ driver: ConnectionDriver) -> InboundMessageQueue {
        let queue = InboundMessageQueue(
            size: driver.settings.configuration.inboundQueueSize,
            bytes: driver.settings.configuration.inboundQueueBytes,
            producer: NIOLoopBound(driver, eventLoop: driver.eventLoop)
        )
        self.queue = queue
        return queue
    }

    /// A data message arrived. Returns false when the application's queue is full (stop reading).
    func deliver(_ data: WebSocketData, driver: ConnectionDriver) -> Bool {
        switch application {
        case .callbacks(let callbacks):
            callbacks.onMessage(EventLoopWebSocket(driver: driver), data)
            return true
        case .task, .handOff:
            return queue?.yield(data.message) ?? true
        }
    }

    /// No more messages will arrive (the peer's close frame or a failure); the close code is known.
    func endInbound(_ result: CloseFrame, error: (any Error)?) {
        // Recorded before the message sequence ends, so `closeFrame` is set when a handler's
        // `for await` loop exits.
        socket?.recordClose(result)
        queue?.finish(error)
    }

    /// The outbound buffer drained after a send answered `.buffered`.
    func drained(_ driver: ConnectionDriver) {
        if case .callbacks(let callbacks) = application {
            callbacks.onDrain(EventLoopWebSocket(driver: driver))
        }
    }

    /// The connection is over.
    func finish(_ result: CloseFrame, clean: Bool, driver: ConnectionDriver) {
        socket?.recordClose(result)
        queue?.finish(clean ? nil : WebSocketError.closed(result))
        if case .callbacks(let callbacks) = application {
            callbacks.onClose(EventLoopWebSocket(driver: driver), result)
        }
        socket = nil
    }
}
