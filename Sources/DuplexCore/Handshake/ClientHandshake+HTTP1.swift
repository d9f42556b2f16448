import NIOCore

extension ClientHandshake {
    /// Writes the upgrade ``request`` as an HTTP/1.1 request head, for a client that writes to
    /// the socket itself rather than through an HTTP codec: the request line (`GET`, the path,
    /// `HTTP/1.1`), `Host` with the authority first, the other fields in order, and the blank
    /// line that ends the head.
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
        for field in request.headerFields {
            buffer.writeString(field.name.rawName)
            buffer.writeString(": ")
            buffer.writeString(field.value)
            buffer.writeString("\r\n")
        }
        buffer.writeString("\r\n")
    }
}
