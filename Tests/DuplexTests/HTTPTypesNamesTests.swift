import Duplex
import HTTPTypes
import NIOCore
import Testing

// This file imports Duplex beside swift-http-types (as a Hummingbird application does) and
// names every type of both without a module prefix: it compiles only while no Duplex name
// collides with an HTTPTypes one (`HTTPResponse` was Duplex's route response once).

@Suite struct HTTPTypesNamesTests {
    @Test func duplexAndHTTPTypesTogetherWithoutPrefixes() async throws {
        let head = HTTPRequest(method: .post, scheme: "https", authority: "example.com", path: "/topics/news?since=1",
                               headerFields: [.contentType: "text/plain"])
        let request = RouteRequest(head: head, parameters: ["name": "news"], route: "/topics/:name",
                                   body: ByteBuffer(string: "hi"))
        #expect(request.method == .post)
        #expect(request.path == "/topics/news")
        #expect(request.query == "since=1")
        #expect(request.target == "/topics/news?since=1")
        #expect(request.headerFields[.contentType] == "text/plain")

        let handler: RouteHandler = { request in
            RouteResponse(status: .accepted, headerFields: [.location: "/topics/\(request.parameters["name"]!)"],
                          body: request.body)
        }
        let response = try await handler(request)
        let http = HTTPResponse(status: response.status, headerFields: response.headerFields)
        #expect(http.status == .accepted)
        #expect(http.headerFields[.location] == "/topics/news")
        #expect(String(buffer: response.body) == "hi")
        #expect(RouteResponse.text("x", status: 404).status == .notFound)

        var fields = HTTPFields()
        fields[.setCookie] = "a=1"
        let decision = UpgradeDecision.accept(userData: nil, headerFields: fields)
        if case .accept(_, let headerFields) = decision { #expect(headerFields[.setCookie] == "a=1") }
        let refusal = UpgradeDecision.reject(status: .unauthorized, reason: "no", headerFields: HTTPFields([HTTPField(name: .wwwAuthenticate, value: "Basic")]))
        if case .reject(let status, _, _) = refusal { #expect(status == 401) }

        var router = WebSocketRouter()
        router.get("/topics/:name", handler)
        router.route(HTTPRequest.Method("PURGE")!, "/cache") { _ in RouteResponse(status: .noContent) }
        var client = WebSocketClientConfiguration()
        client.headerFields[.authorization] = "Bearer t"
        #expect(client.headerFields[.authorization] == "Bearer t")
        let error = HandshakeError.unexpectedStatus(.forbidden, [:])
        #expect(error.description.contains("403"))
        #expect(CloseCode.normalClosure.rawValue == 1000)
    }
}
