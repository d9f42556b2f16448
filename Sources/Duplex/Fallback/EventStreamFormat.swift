import DuplexCore
import NIOCore

/// The text format of the fallback transports, in both directions: Server-Sent Events
/// (the WHATWG HTML `text/event-stream` format). An SSE stream carries these events as they
/// come; a long-poll answer carries a batch of them as its body; a POST's body is a batch too.
///
/// Down (server to client), each message is one event with its sequence number as `id:`:
/// - a text message: `data:` lines (the text split at its line feeds);
/// - a text message that contains a carriage return or is empty: `event: text64`, its UTF-8 in
///   base64 (SSE parsers drop carriage returns and empty events);
/// - a binary message: `event: binary`, base64. An empty payload is written `=`;
/// - the end of the session: `event: close` with `data: CODE REASON`;
/// - messages that can no longer be replayed: `event: lost` with `data: FIRST LAST`;
/// - a session opened by a GET stream starts with `event: session`, `data: ID`;
/// - heartbeats are comment lines (`: heartbeat`).
///
/// Up (a POST's body): the same `event:`/`data:` lines, events separated by an empty line; an
/// event without `event:` is text; `close` carries `CODE REASON` (or nothing).
enum EventStreamFormat {
    /// A comment line: keeps a stream alive and tells the client nothing.
    static let heartbeat = ByteBuffer(string: ": heartbeat\n\n")

    /// A data message with its sequence number.
    static func message(sequence: UInt64, isText: Bool, payload: ByteBuffer) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(payload.readableBytes + 32)
        out.writeString("id: \(sequence)\n")
        let view = payload.readableBytesView
        if isText, !view.isEmpty, !view.contains(UInt8(ascii: "\r")) {
            for line in view.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                out.writeStaticString("data: ")
                out.writeBytes(line)
                out.writeInteger(UInt8(ascii: "\n"))
            }
        } else {
            out.writeString(isText ? "event: text64\ndata: " : "event: binary\ndata: ")
            if view.isEmpty { out.writeInteger(UInt8(ascii: "=")) } else { Base64Text.encode(payload, into: &out) }
            out.writeInteger(UInt8(ascii: "\n"))
        }
        out.writeInteger(UInt8(ascii: "\n"))
        return out
    }

    /// The end of the session, with the close code and reason the client should report.
    static func close(sequence: UInt64, _ frame: CloseFrame) -> ByteBuffer {
        let code = frame.code?.rawValue ?? CloseCode.noStatusReceived.rawValue
        let reason = frame.reason.replacing("\r", with: " ").replacing("\n", with: " ")
        return ByteBuffer(string: "id: \(sequence)\nevent: close\ndata: \(code) \(reason)\n\n")
    }

    /// Messages `first...last` were dropped before the client got them.
    static func lost(first: UInt64, last: UInt64) -> ByteBuffer {
        ByteBuffer(string: "event: lost\ndata: \(first) \(last)\n\n")
    }

    /// The id of a session opened by its stream.
    static func session(id: String) -> ByteBuffer {
        ByteBuffer(string: "event: session\ndata: \(id)\n\n")
    }

    // MARK: - Up

    /// One event of a POST's body.
    enum UpstreamEvent: Sendable, Hashable {
        case message(isText: Bool, ByteBuffer)
        case close(code: CloseCode?, reason: String)
    }

    /// Why a POST's body was refused.
    enum UpstreamError: Error, Hashable, CustomStringConvertible {
        case notUTF8
        case unknownEvent(String)
        case badBase64
        case badClose(String)
        case messageTooLarge(limit: Int)

        var description: String {
            switch self {
            case .notUTF8: "the body must be UTF-8 text/event-stream events"
            case .unknownEvent(let name): "unknown event type \(name.prefix(40)) (text, text64, binary, close)"
            case .badBase64: "a text64 or binary event's data is not padded base64"
            case .badClose(let data): "a close event carries CODE REASON, not \(data.prefix(40))"
            case .messageTooLarge(let limit): "a message over \(limit) bytes"
            }
        }
    }

    /// The events of a POST's body, each message at most `maxMessageSize` bytes.
    static func parseUpstream(_ body: ByteBuffer, maxMessageSize: Int) throws(UpstreamError) -> [UpstreamEvent] {
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else { throw .notUTF8 }
        var events: [UpstreamEvent] = []
        var type: Substring?
        var data: [Substring] = []
        var hasData = false
        func dispatch() throws(UpstreamError) {
            defer { type = nil; data = []; hasData = false }
            guard hasData || type != nil else { return }
            let joined = data.joined(separator: "\n")
            switch type ?? "text" {
            case "text":
                guard joined.utf8.count <= maxMessageSize else { throw .messageTooLarge(limit: maxMessageSize) }
                events.append(.message(isText: true, ByteBuffer(string: joined)))
            case "text64", "binary":
                let bytes: ByteBuffer
                if joined == "=" {
                    bytes = ByteBuffer()
                } else {
                    guard joined.utf8.count / 4 * 3 <= maxMessageSize + 2 else { throw .messageTooLarge(limit: maxMessageSize) }
                    guard let decoded = Base64Text.decode(joined.utf8) else { throw .badBase64 }
                    bytes = decoded
                }
                guard bytes.readableBytes <= maxMessageSize else { throw .messageTooLarge(limit: maxMessageSize) }
                let isText = type == "text64"
                if isText, !UTF8Validator.isValid(bytes.readableBytesView) { throw .notUTF8 }
                events.append(.message(isText: isText, bytes))
            case "close":
                events.append(try parseClose(joined))
            case let other:
                throw .unknownEvent(String(other))
            }
        }
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            var line = Substring(rawLine)
            if line.utf8.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.isEmpty {
                try dispatch()
                continue
            }
            if line.first == ":" { continue }
            let name: Substring
            var value: Substring
            if let colon = line.firstIndex(of: ":") {
                name = line[..<colon]
                value = line[line.index(after: colon)...]
                if value.first == " " { value = value.dropFirst() }
            } else {
                name = line
                value = ""
            }
            switch name {
            case "event": type = value
            case "data":
                data.append(value)
                hasData = true
            default: continue  // `id`, `retry` and unknown fields mean nothing upstream
            }
        }
        try dispatch()
        return events
    }

    /// `CODE REASON`, `CODE` or nothing.
    private static func parseClose(_ data: String) throws(UpstreamError) -> UpstreamEvent {
        guard !data.isEmpty else { return .close(code: nil, reason: "") }
        let parts = data.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard let raw = UInt16(parts[0]) else { throw .badClose(data) }
        let code = CloseCode(rawValue: raw)
        guard code.isValidOnWire else { throw .badClose(data) }
        let reason = parts.count > 1 ? String(parts[1]) : ""
        guard reason.utf8.count <= 123 else { throw .badClose(data) }
        return .close(code: code, reason: reason)
    }
}
