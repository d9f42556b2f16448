import Foundation
import NIOCore
import NIOPosix

// The fallback tests' HTTP/1.1 client: raw NIO bytes (no HTTP library), keep-alive requests
// with Content-Length bodies, chunked bodies, and SSE streams parsed event by event.

/// One HTTP connection of a test, used by one task.
final class HTTPTestConnection {
    struct Response {
        var status: Int
        /// Header fields by lowercased name.
        var headers: [String: String]
        var body: ByteBuffer
        var text: String { String(buffer: body) }
    }

    /// One SSE event (or comment) as the stream carried it.
    struct Event: Equatable {
        var id: String?
        var type: String?
        var data: String?
        var comment: String?
    }

    private let channel: any Channel
    private var iterator: AsyncStream<ByteBuffer>.AsyncIterator
    private var buffer = ByteBuffer()
    /// The SSE stream's decoded body not yet parsed into events.
    private var streamText = ""
    private var chunkLeft: Int?

    private init(channel: any Channel, stream: AsyncStream<ByteBuffer>) {
        self.channel = channel
        self.iterator = stream.makeAsyncIterator()
    }

    static func connect(port: Int) async throws -> HTTPTestConnection {
        let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        let channel = try await ClientBootstrap(group: fallbackLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(continuation)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return HTTPTestConnection(channel: channel, stream: stream)
    }

    func close() async {
        try? await channel.close()
    }

    /// Sends a request (with `Content-Length` when it has a body).
    func send(_ method: String, _ target: String, headers: [(String, String)] = [], body: ByteBuffer? = nil) {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.readableBytes)\r\n" }
        var out = ByteBuffer(string: head + "\r\n")
        if var body { out.writeBuffer(&body) }
        channel.writeAndFlush(out, promise: nil)
    }

    /// Sends a request and reads its whole answer.
    func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: ByteBuffer? = nil) async throws -> Response {
        send(method, target, headers: headers, body: body)
        return try await response()
    }

    /// Reads one answer: its head, then a `Content-Length` or chunked body.
    func response() async throws -> Response {
        var response = try await head()
        if let length = response.headers["content-length"].flatMap(Int.init) {
            while buffer.readableBytes < length { try await fill() }
            response.body = buffer.readSlice(length: length)!
        } else if response.headers["transfer-encoding"] == "chunked" {
            var body = ByteBuffer()
            while let chunk = try await nextChunk(), chunk.readableBytes > 0 {
                var chunk = chunk
                body.writeBuffer(&chunk)
            }
            response.body = body
        }
        return response
    }

    /// Reads an answer's head only (an SSE stream's, say).
    func head() async throws -> Response {
        while true {
            let view = buffer.readableBytesView
            if let end = view.firstRange(of: Array("\r\n\r\n".utf8)) {
                let text = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
                buffer.moveReaderIndex(forwardBy: end.upperBound - view.startIndex)
                var lines = text.components(separatedBy: "\r\n")
                let status = Int(lines.removeFirst().split(separator: " ")[1])!
                var headers: [String: String] = [:]
                for line in lines {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                return Response(status: status, headers: headers, body: ByteBuffer())
            }
            try await fill()
        }
    }

    /// The next SSE event of a chunked `text/event-stream` body; nil when the stream ended.
    func nextEvent() async throws -> Event? {
        while true {
            if let range = streamText.range(of: "\n\n") {
                let block = streamText[..<range.lowerBound]
                streamText = String(streamText[range.upperBound...])
                var event = Event()
                var data: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") {
                        event.comment = line.dropFirst().trimmingCharacters(in: .whitespaces)
                        continue
                    }
                    let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                    var value = parts.count > 1 ? String(parts[1]) : ""
                    if value.hasPrefix(" ") { value.removeFirst() }
                    switch parts[0] {
                    case "id": event.id = value
                    case "event": event.type = value
                    case "data": data.append(value)
                    default: continue
                    }
                }
                if !data.isEmpty { event.data = data.joined(separator: "\n") }
                return event
            }
            guard let chunk = try await nextChunk(), chunk.readableBytes > 0 else { return nil }
            streamText += String(buffer: chunk)
        }
    }

    /// The next event that is not a comment.
    func nextMessageEvent() async throws -> Event? {
        while let event = try await nextEvent() {
            if event.comment == nil || event.type != nil || event.data != nil { return event }
        }
        return nil
    }

    /// The next chunk of a chunked body (empty at its end), nil if the connection closed first.
    private func nextChunk() async throws -> ByteBuffer? {
        while true {
            if let size = chunkLeft {
                guard buffer.readableBytes >= size + 2 else {
                    guard try await fillOrEnd() else { return nil }
                    continue
                }
                chunkLeft = nil
                let chunk = buffer.readSlice(length: size)!
                buffer.moveReaderIndex(forwardBy: 2)
                return chunk
            }
            let view = buffer.readableBytesView
            guard let lineEnd = view.firstRange(of: Array("\r\n".utf8)) else {
                guard try await fillOrEnd() else { return nil }
                continue
            }
            let sizeText = String(decoding: view[view.startIndex..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText, radix: 16) else { throw TestClientError("bad chunk size \(sizeText)") }
            buffer.moveReaderIndex(forwardBy: lineEnd.upperBound - view.startIndex)
            chunkLeft = size
        }
    }

    /// Reads more bytes; throws if the connection closed.
    private func fill() async throws {
        guard try await fillOrEnd() else { throw TestClientError("the connection closed") }
    }

    private func fillOrEnd() async throws -> Bool {
        guard var more = await iterator.next() else { return false }
        buffer.writeBuffer(&more)
        return true
    }

    /// Whether the server closed the connection (waits for it; bounded by the test's time limit).
    func waitForClose() async -> Bool {
        while await iterator.next() != nil {}
        return true
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let continuation: AsyncStream<ByteBuffer>.Continuation
        init(_ continuation: AsyncStream<ByteBuffer>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}

/// A fallback session from a test's side: its id, a connection for each direction.
struct FallbackTestSession {
    let port: Int
    let path: String
    let id: String

    /// Opens a session with `POST path?transport=...`.
    static func open(port: Int, path: String, transport: String) async throws -> FallbackTestSession {
        let connection = try await HTTPTestConnection.connect(port: port)
        let answer = try await connection.request("POST", "\(path)?transport=\(transport)")
        await connection.close()
        guard answer.status == 200,
              let json = try JSONSerialization.jsonObject(with: Data(answer.text.utf8)) as? [String: Any],
              let id = json["session"] as? String, json["transport"] as? String == transport else {
            throw TestClientError("opening a \(transport) session answered \(answer.status) \(answer.text)")
        }
        return FallbackTestSession(port: port, path: path, id: id)
    }

    var target: String { "\(path)?session=\(id)" }

    /// POSTs a body of events on a connection of its own; returns the answer's status.
    func post(_ events: String) async throws -> Int {
        let connection = try await HTTPTestConnection.connect(port: port)
        let status = try await connection.request("POST", target, body: ByteBuffer(string: events)).status
        await connection.close()
        return status
    }

    /// One long poll; returns the answer.
    func poll(last: UInt64? = nil, on connection: HTTPTestConnection) async throws -> HTTPTestConnection.Response {
        try await connection.request("GET", target + (last.map { "&last=\($0)" } ?? ""))
    }

    /// Opens the SSE stream on a new connection and checks its head.
    func stream(lastEventID: String? = nil) async throws -> HTTPTestConnection {
        let connection = try await HTTPTestConnection.connect(port: port)
        var headers = [("Accept", "text/event-stream")]
        if let lastEventID { headers.append(("Last-Event-ID", lastEventID)) }
        connection.send("GET", target, headers: headers)
        let head = try await connection.head()
        guard head.status == 200, head.headers["content-type"]?.hasPrefix("text/event-stream") == true else {
            throw TestClientError("the stream answered \(head.status) \(head.headers)")
        }
        return connection
    }
}

/// Events of a long poll's body, parsed as the SSE stream's are.
func pollEvents(_ body: String) -> [HTTPTestConnection.Event] {
    body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { block in
        var event = HTTPTestConnection.Event()
        var data: [String] = []
        for line in block.split(separator: "\n") {
            if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
            else if line.hasPrefix("event: ") { event.type = String(line.dropFirst(7)) }
            else if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
        }
        if !data.isEmpty { event.data = data.joined(separator: "\n") }
        return event
    }
}
