import Duplex
import HTTPTypes
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Vapor

extension RouteRequest {
    /// Vapor's request as Duplex sees it: its head (as HTTPTypes has it), the route's path
    /// parameters, the route as registered (`/chat/:room`, groups included) and the peer's address.
    /// Throws if the head has no HTTPTypes form (a malformed request).
    init(_ request: Request) throws {
        let head = HTTPRequestHead(version: request.version, method: request.method, uri: request.url.string,
                                   headers: request.headers)
        let secure = request.application.http.server.configuration.tlsConfiguration != nil
        var parameters: [String: String] = [:]
        for name in request.parameters.allNames {
            parameters[name] = request.parameters.get(name)
        }
        let route = request.route.map { "/" + $0.path.map(\.description).joined(separator: "/") }
        self.init(head: try HTTPRequest(head, secure: secure, splitCookie: false), parameters: parameters, route: route,
                  remoteAddress: request.remoteAddress)
    }
}

extension Response {
    /// A Duplex answer (a refusal) as a Vapor response: its status, header fields and body.
    convenience init(_ answer: RouteResponse) {
        self.init(status: HTTPResponseStatus(statusCode: answer.status.code, reasonPhrase: answer.status.reasonPhrase),
                  headers: HTTPHeaders(answer.headerFields), body: .init(buffer: answer.body))
    }
}
