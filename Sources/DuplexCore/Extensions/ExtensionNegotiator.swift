/// The server side of an extension's negotiation: given the client's offers, accept one.
///
/// Implementations are configuration (Sendable); each accepted offer makes a fresh
/// ``WebSocketExtension`` for the new connection.
public protocol ServerExtensionNegotiator: Sendable {
    /// The extension name this negotiator answers to.
    var name: String { get }
    /// The RSV bits the extension will use; the server never accepts two extensions that share a bit.
    var reservedBits: ReservedBits { get }
    /// Picks the first acceptable offer among `offers` (all with this negotiator's name, in the
    /// client's order of preference).
    /// - Returns: the element for the response header and the extension to use, or nil to decline.
    func accept(offers: [ExtensionOffer]) -> (response: ExtensionOffer, extension: any WebSocketExtension)?
}

/// The client side of an extension's negotiation: make the offers, check the server's answer.
public protocol ClientExtensionNegotiator: Sendable {
    /// The extension name this negotiator offers, e.g. `permessage-deflate`.
    var name: String { get }
    /// The RSV bits the extension will use; a server answer that accepts two extensions sharing a bit
    /// fails the handshake.
    var reservedBits: ReservedBits { get }
    /// The elements to send in `Sec-WebSocket-Extensions`, most preferred first.
    func offers() -> [ExtensionOffer]
    /// Checks the server's answer for this extension and makes the extension.
    /// - Throws: ``HandshakeError`` when the answer breaks the extension's rules (the client
    ///   then fails the connection).
    func accept(response: ExtensionOffer) throws(HandshakeError) -> any WebSocketExtension
}
