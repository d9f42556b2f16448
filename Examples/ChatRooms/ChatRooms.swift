import Duplex
import Foundation
import Synchronization

/// A chat server with rooms, on Duplex topics.
///
/// `ws://HOST:PORT/rooms/ROOM?name=NAME` joins ROOM as NAME. Every text message a member sends
/// reaches every member of the room, the sender included, as JSON:
///
/// ```json
/// {"type":"join","room":"lobby","user":"ana","members":2}
/// {"type":"message","room":"lobby","user":"ana","text":"hi"}
/// {"type":"leave","room":"lobby","user":"ana","members":1}
/// ```
///
/// Room and user names are 1-32 characters of `A-Z a-z 0-9 . _ -`; anything else is refused at
/// the handshake with 400, before a connection exists. Messages over 4 KiB are closed with 1009
/// (a limit of the endpoint's own configuration).
public enum ChatRooms {
    /// One event of a room, as members receive it.
    public struct Event: Codable, Equatable, Sendable {
        public enum Kind: String, Codable, Sendable { case join, message, leave }
        public var type: Kind
        public var room: String
        public var user: String
        public var text: String?
        public var members: Int?
    }

    /// Who a connection is: its room and name, checked at the handshake.
    struct Member: Sendable {
        let room: String
        let user: String
        var topic: String { "room." + room }
    }

    /// The server, once it exists: the leave notice is published by the server, after the
    /// member's connection is gone.
    public final class ServerHandle: Sendable {
        private let server = Mutex<WebSocketServer?>(nil)
        public init() {}
        public func set(_ value: WebSocketServer) { server.withLock { $0 = value } }
        var value: WebSocketServer? { server.withLock { $0 } }
    }

    /// Whether `name` may name a room or a user.
    static func isValidName(_ name: String) -> Bool {
        (1...32).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }

    /// The routes: `/rooms/:room`.
    public static func router(server: ServerHandle) -> WebSocketRouter {
        var configuration = WebSocketConfiguration()
        configuration.limits = Limits(maxFrameSize: 4096, maxMessageSize: 4096)
        var router = WebSocketRouter()
        router.webSocket("/rooms/:room", WebSocketEndpoint(
            configuration: configuration,
            onUpgrade: { request in
                let name = request.query.flatMap { URLComponents(string: "?" + $0)?.queryItems }?
                    .first { $0.name == "name" }?.value
                guard let room = request.parameters["room"], isValidName(room), let name, isValidName(name) else {
                    return .reject(status: .badRequest, reason: "use /rooms/ROOM?name=NAME, names of 1-32 characters of A-Z a-z 0-9 . _ -")
                }
                return .accept(userData: Member(room: room, user: name))
            },
            handler: { ws in try await serve(ws, server: server) }
        ))
        return router
    }

    /// One member's session: join, relay each message to the room, leave.
    static func serve(_ ws: WebSocketConnection, server: ServerHandle) async throws {
        guard let member = ws.userData as? Member else { return }
        _ = try await ws.subscribe(to: member.topic)
        let members = server.value?.subscriberCount(of: member.topic)
        try await announce(Event(type: .join, room: member.room, user: member.user, members: members), member, ws)
        defer {
            // The connection is closing: the server tells the others.
            if let server = server.value {
                let left = server.subscriberCount(of: member.topic)
                if let text = encode(Event(type: .leave, room: member.room, user: member.user, members: left)) {
                    _ = server.publish(.text(text), to: member.topic)
                }
            }
        }
        for try await message in ws.messages {
            guard case .text(let text) = message else { continue }  // the chat is text only
            try await announce(Event(type: .message, room: member.room, user: member.user, text: text), member, ws)
        }
    }

    /// Sends `event` to the sender and publishes it to the rest of the room.
    private static func announce(_ event: Event, _ member: Member, _ ws: WebSocketConnection) async throws {
        guard let text = encode(event) else { return }
        _ = try await ws.publish(.text(text), to: member.topic)
        try await ws.send(text: text)
    }

    static func encode(_ event: Event) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(event)).map { String(decoding: $0, as: UTF8.self) }
    }
}
