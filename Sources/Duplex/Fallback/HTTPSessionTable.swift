import NIOConcurrencyHelpers
import NIOCore

/// The fallback sessions of one server, by id. A session lives on one event loop; requests for
/// it on other connections hop there.
final class HTTPSessionTable: Sendable {
    private let sessions = NIOLockedValueBox<[String: NIOLoopBound<HTTPSession>]>([:])

    /// Adds a session unless the table holds `limit` already.
    func insert(_ session: HTTPSession, limit: Int) -> Bool {
        let entry = NIOLoopBound(session, eventLoop: session.eventLoop)
        return sessions.withLockedValue { sessions in
            guard sessions.count < limit else { return false }
            sessions[session.state.id] = entry
            return true
        }
    }

    func lookup(_ id: String) -> NIOLoopBound<HTTPSession>? {
        sessions.withLockedValue { $0[id] }
    }

    func remove(_ id: String) {
        _ = sessions.withLockedValue { $0.removeValue(forKey: id) }
    }

    var count: Int { sessions.withLockedValue { $0.count } }

    /// The server shuts down: every session's connection closes with 1001.
    func goAwayAll() {
        forEach { $0.goAway() }
    }

    /// The server stops: every session ends now.
    func endAll() {
        forEach { $0.end() }
    }

    private func forEach(_ body: @escaping @Sendable (HTTPSession) -> Void) {
        for entry in sessions.withLockedValue({ Array($0.values) }) {
            entry.eventLoop.execute { body(entry.value) }
        }
    }
}
