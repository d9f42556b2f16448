import Duplex

/// `GET /stats/transports`: which transports carried the server's connections and WebSockets, as
/// JSON (`accepted_connections`, `http2_connections`, `websockets` by transport). The browser
/// check reads it to tell whether Chromium opened its WebSocket over HTTP/2.
enum TransportRoutes {
    static func register(on router: inout WebSocketRouter, server: ServerReference) {
        router.get("/stats/transports") { _ in
            guard let server = server.value else { return .text("starting\n", status: .serviceUnavailable) }
            let byTransport = WebSocketTransportKind.allCases
                .map { "\"\($0.rawValue)\":\(server.webSocketsOpened(over: $0))" }
                .joined(separator: ",")
            return .json("{\"accepted_connections\":\(server.acceptedConnectionCount),"
                + "\"http2_connections\":\(server.http2ConnectionCount),\"websockets\":{\(byTransport)}}\n")
        }
    }
}
