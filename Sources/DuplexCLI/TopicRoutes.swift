import Duplex
import DuplexCore
import NIOConcurrencyHelpers
import NIOCore

/// The topic interface of `duplex serve`:
///
/// - `ws://HOST/topics/NAME`: the connection subscribes to NAME; every message it sends is
///   published to NAME, to every subscriber, the sender included, unchanged;
/// - `POST /publish/NAME`: the body is published to NAME (text for `text/*` and
///   `application/json`, binary otherwise); answers `{"topic": "NAME", "subscribers": N}`;
/// - `GET /topics`: `{"topics": [{"name": "NAME", "subscribers": N}, ...]}`, sorted by name.
///
/// Topic names are 1-128 characters of `A-Z a-z 0-9 . _ : -`; anything else is a 400.
enum TopicRoutes {
    /// Whether `name` may be a topic of `duplex serve`.
    static func isValidName(_ name: some StringProtocol) -> Bool {
        let utf8 = name.utf8
        guard (1...128).contains(utf8.count) else { return false }
        return utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: ":"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }

    static func register(on router: inout WebSocketRouter, server: ServerReference,
                         extensions: [any ServerExtensionNegotiator]) {
        router.webSocket("/topics/:name", WebSocketEndpoint(
            extensions: extensions,
            onUpgrade: { request in
                guard let name = request.parameters["name"], isValidName(name) else {
                    return .reject(status: .badRequest, reason: "topic names are 1-128 characters of A-Z a-z 0-9 . _ : -")
                }
                // The topic travels as the connection's userData: `ws.request` rebuilds the whole
                // request on every read, too much for every message.
                return .accept(userData: name)
            },
            callbacks: WebSocketCallbacks(
                onOpen: { ws in
                    guard let name = ws.userData as? String else { return }
                    _ = try? ws.subscribe(to: name)
                },
                onMessage: { ws, data in
                    guard let name = ws.userData as? String else { return }
                    // To every other subscriber with one shared frame, and to the sender itself.
                    _ = try? ws.publish(data, to: name)
                    ws.send(data)
                }
            )
        ))
        router.post("/publish/:name") { request in
            guard let name = request.parameters["name"], isValidName(name) else {
                return .text("topic names are 1-128 characters of A-Z a-z 0-9 . _ : -\n", status: .badRequest)
            }
            let contentType = request.headerFields[.contentType]?.lowercased() ?? ""
            let isText = contentType.hasPrefix("text/") || contentType.hasPrefix("application/json")
            if isText && !UTF8Validator.isValid(request.body.readableBytesView) {
                return .text("a text body must be UTF-8\n", status: .badRequest)
            }
            let reached = server.value?.publish(WebSocketData(isText: isText, bytes: request.body), to: name) ?? 0
            return .json(#"{"topic":"\#(name)","subscribers":\#(reached)}"#)
        }
        router.get("/topics") { _ in
            let topics = (server.value?.topics ?? [:]).sorted { $0.key < $1.key }
            let entries = topics.map { #"{"name":"\#($0.key)","subscribers":\#($0.value)}"# }
            return .json(#"{"topics":[\#(entries.joined(separator: ","))]}"#)
        }
    }
}

/// The server, for routes made before it (they are part of its configuration).
final class ServerReference: Sendable {
    private let box = NIOLockedValueBox<WebSocketServer?>(nil)
    var value: WebSocketServer? { box.withLockedValue { $0 } }
    func set(_ server: WebSocketServer) { box.withLockedValue { $0 = server } }
}

extension RouteResponse {
    /// An `application/json` response.
    static func json(_ json: String, status: HTTPResponse.Status = .ok) -> RouteResponse {
        RouteResponse(status: status, headerFields: [.contentType: "application/json"], body: ByteBuffer(string: json))
    }
}
