import HTTPTypes
import NIOCore

/// The opening handshake as HTTP/1.1 bytes, for a transport that writes to the socket itself
/// rather than through an HTTP codec: the client's request head and the server's 101 head.
extension ClientHandshake {
    /// Writes the upgrade ``request`` as an HTTP/1.1 request head: the request line (`GET`, the
    /// path, `HTTP/1.1`), `Host` with the authority first, the other fields in order, and the
    /// blank line that ends the head.
    ///
    /// ```
    /// GET /chat HTTP/1.1\r\n
    /// Host: server.example.com\r\n
    /// Upgrade: websocket\r\n
    /// ...
    /// \r\n
    /// ```
    public func writeHTTP1Request(into buffer: inout ByteBuffer) {
        buffer.writeString(request.method.rawValue)
        buffer.writeString(" ")
        buffer.writeString(request.path ?? "/")
        buffer.writeString(" HTTP/1.1\r\nHost: ")
        buffer.writeString(request.authority ?? "")
        buffer.writeString("\r\n")
        buffer.writeHTTP1Fields(request.headerFields)
    }
}

extension ServerHandshake {
    /// Writes the answer to an accepted upgrade request as an HTTP/1.1 response head (RFC 9112
    /// §4): `HTTP/1.1 101 Switching Protocols`, `headerFields` in order (an
    /// ``Acceptance``'s ``Acceptance/headerFields``: `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Accept`, the chosen subprotocol and extensions, with any the application
    /// adds), and the blank line that ends the head.
    public static func writeHTTP1SwitchingProtocols(_ headerFields: HTTPFields, into buffer: inout ByteBuffer) {
        buffer.writeString("HTTP/1.1 101 Switching Protocols\r\n")
        buffer.writeHTTP1Fields(headerFields)
    }
}

extension ByteBuffer {
    /// `Name: value` lines, then the blank line that ends an HTTP/1.1 head. HTTPTypes' fields
    /// hold no CR or LF, so a value cannot start a line of its own.
    mutating func writeHTTP1Fields(_ fields: HTTPFields) {
        for field in fields {
            writeString(field.name.rawName)
            writeString(": ")
            writeString(field.value)
            writeString("\r\n")
        }
        writeString("\r\n")
    }
}
