import DuplexCore
import HTTPTypes
import NIOCore
import Testing

/// The opening handshake as HTTP/1.1 bytes: `ClientHandshake.writeHTTP1Request(into:)` and
/// `ServerHandshake.writeHTTP1SwitchingProtocols(_:into:)`.
@Suite struct HTTP1HeadTests {
    /// RFC 6455 §1.2's request (fields in Duplex's order), with its key, and its answer accepted.
    @Test func writesTheRFCRequest() throws {
        let handshake = ClientHandshake(host: "server.example.com", path: "/chat", subprotocols: ["chat", "superchat"],
                                        origin: "http://example.com", key: "dGhlIHNhbXBsZSBub25jZQ==")
        var buffer = ByteBuffer()
        handshake.writeHTTP1Request(into: &buffer)
        #expect(String(buffer: buffer) == """
            GET /chat HTTP/1.1\r
            Host: server.example.com\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
            Sec-WebSocket-Version: 13\r
            Sec-WebSocket-Protocol: chat, superchat\r
            Origin: http://example.com\r
            \r

            """)
        let answer = HTTPResponse(status: .switchingProtocols, headerFields: [
            .upgrade: "websocket", .connection: "Upgrade", .secWebSocketAccept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            .secWebSocketProtocol: "chat",
        ])
        #expect(try handshake.validate(answer).subprotocol == "chat")
    }

    /// The query stays in the request target; extra fields follow the handshake's, as given.
    @Test func writesTheQueryAndExtraFields() {
        var extra = HTTPFields()
        extra[.authorization] = "Bearer t0k3n"
        extra[HTTPField.Name("X-Trace")!] = "1"
        let handshake = ClientHandshake(host: "127.0.0.1:8080", path: "/topics/ticker?since=5", extraHeaders: extra,
                                        key: "dGhlIHNhbXBsZSBub25jZQ==")
        var buffer = ByteBuffer()
        handshake.writeHTTP1Request(into: &buffer)
        let lines = String(buffer: buffer).components(separatedBy: "\r\n")
        #expect(lines == [
            "GET /topics/ticker?since=5 HTTP/1.1", "Host: 127.0.0.1:8080", "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "Authorization: Bearer t0k3n",
            "X-Trace: 1", "", "",
        ])
    }

    /// RFC 6455 §1.3's answer to that request, from the server's acceptance of it.
    @Test func writesTheRFCAnswer() throws {
        let handshake = ClientHandshake(host: "server.example.com", path: "/chat", subprotocols: ["chat", "superchat"],
                                        origin: "http://example.com", key: "dGhlIHNhbXBsZSBub25jZQ==")
        let upgrade = try ServerHandshake.validate(handshake.request, httpVersion: (1, 1)).get()
        let acceptance = ServerHandshake.accept(upgrade, subprotocol: "chat")
        var buffer = ByteBuffer()
        ServerHandshake.writeHTTP1SwitchingProtocols(acceptance.headerFields, into: &buffer)
        #expect(String(buffer: buffer) == """
            HTTP/1.1 101 Switching Protocols\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r
            Sec-WebSocket-Protocol: chat\r
            \r

            """)
    }
}
