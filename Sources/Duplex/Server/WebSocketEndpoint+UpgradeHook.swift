import HTTPTypes

extension WebSocketEndpoint {
    /// This endpoint with `hook` deciding its upgrade requests before its own `onUpgrade`: a
    /// framework adapter's hook, which sees the framework's request or context. When `hook`
    /// refuses, that is the answer; when it accepts, the endpoint's own hook (if any) decides
    /// next, its user data winning over `hook`'s, and the header fields of both go on the 101.
    public func precededByUpgradeHook(_ hook: @escaping @Sendable (RouteRequest) async -> UpgradeDecision) -> WebSocketEndpoint {
        var endpoint = self
        let own = onUpgrade
        endpoint.onUpgrade = { request in
            let first = await hook(request)
            guard case .accept(let userData, let headerFields) = first, let own else { return first }
            switch await own(request) {
            case .accept(let ownData, let ownFields):
                var fields = headerFields
                fields.append(contentsOf: ownFields)
                return .accept(userData: ownData ?? userData, headerFields: fields)
            case let rejection:
                return rejection
            }
        }
        return endpoint
    }
}
