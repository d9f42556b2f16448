/// Settings of permessage-deflate (RFC 7692) for one side of a connection.
///
/// zlib cannot compress with a 256-byte window (8 window bits). When the peer limits this
/// side's window to 8 bits, Duplex accepts and sends its own messages uncompressed, which
/// RFC 7692 §6 allows for any message; it still inflates everything the peer compresses.
public struct PerMessageDeflateConfiguration: Sendable, Hashable {
    /// Reset this side's compression context after every message (`*_no_context_takeover` for
    /// this side). Costs ratio on similar messages; frees the compressor's memory between
    /// messages. Default: false.
    public var noContextTakeover: Bool
    /// Ask the peer to reset its context after every message (so this side can free its
    /// decompressor between messages). Default: false.
    public var requestPeerNoContextTakeover: Bool
    /// Largest window (bits, 9...15) this side compresses with. Default: 15 (32 KiB).
    public var maxWindowBits: Int
    /// Window limit (bits, 8...15) asked of the peer's compressor; nil asks nothing. Default: nil.
    public var requestPeerMaxWindowBits: Int?
    /// zlib compression level, 0...9 (or -1 for zlib's default, 6). Default: -1.
    public var compressionLevel: Int32
    /// zlib memLevel, 1...9: the compressor's state memory (1 << (memLevel + 9) bytes). Default: 8.
    public var memoryLevel: Int32
    /// Messages smaller than this are sent uncompressed. Default: 64 bytes.
    public var minimumMessageSize: Int

    /// A configuration; every setting has a default (see each property). Values outside the documented
    /// ranges stop the program (a precondition).
    public init(
        noContextTakeover: Bool = false,
        requestPeerNoContextTakeover: Bool = false,
        maxWindowBits: Int = 15,
        requestPeerMaxWindowBits: Int? = nil,
        compressionLevel: Int32 = -1,
        memoryLevel: Int32 = 8,
        minimumMessageSize: Int = 64
    ) {
        precondition((9...15).contains(maxWindowBits), "maxWindowBits must be 9...15")
        precondition(requestPeerMaxWindowBits.map { (8...15).contains($0) } ?? true, "window bits must be 8...15")
        precondition((-1...9).contains(compressionLevel), "compressionLevel must be -1...9")
        precondition((1...9).contains(memoryLevel), "memoryLevel must be 1...9")
        self.noContextTakeover = noContextTakeover
        self.requestPeerNoContextTakeover = requestPeerNoContextTakeover
        self.maxWindowBits = maxWindowBits
        self.requestPeerMaxWindowBits = requestPeerMaxWindowBits
        self.compressionLevel = compressionLevel
        self.memoryLevel = memoryLevel
        self.minimumMessageSize = minimumMessageSize
    }
}

extension PerMessageDeflate {
    /// The server's negotiation: takes the first acceptable offer (RFC 7692 §7.1).
    public struct ServerNegotiator: ServerExtensionNegotiator {
        /// This side's settings and what it asks of the client.
        public var configuration: PerMessageDeflateConfiguration
        /// `permessage-deflate`.
        public var name: String { PerMessageDeflate.name }
        /// RSV1.
        public var reservedBits: ReservedBits { .rsv1 }

        /// A negotiator with `configuration` (zlib's defaults, context takeover, window 15 by default).
        public init(configuration: PerMessageDeflateConfiguration = PerMessageDeflateConfiguration()) {
            self.configuration = configuration
        }

        /// Accepts the first of the client's offers whose parameters are valid and acceptable (RFC 7692
        /// §7.1), answering with the parameters this side will use; nil when none is.
        public func accept(offers: [ExtensionOffer]) -> (response: ExtensionOffer, extension: any WebSocketExtension)? {
            for offer in offers {
                guard let offered = try? PerMessageDeflateParameters.parse(offer, isResponse: false) else { continue }
                var response = PerMessageDeflateParameters()
                // This server's compressor.
                response.serverNoContextTakeover = offered.serverNoContextTakeover || configuration.noContextTakeover
                var serverBits = configuration.maxWindowBits
                if let limit = offered.serverMaxWindowBits { serverBits = min(serverBits, limit) }
                if offered.serverMaxWindowBits != nil || serverBits < 15 { response.serverMaxWindowBits = serverBits }
                // The client's compressor: ask for what is configured, where the offer allows it.
                response.clientNoContextTakeover = configuration.requestPeerNoContextTakeover
                var clientBits = 15
                switch offered.clientMaxWindowBits {
                case .bits(let limit):
                    clientBits = min(limit, configuration.requestPeerMaxWindowBits ?? 15)
                    response.clientMaxWindowBits = .bits(clientBits)
                case .supported:
                    if let wanted = configuration.requestPeerMaxWindowBits {
                        clientBits = wanted
                        response.clientMaxWindowBits = .bits(wanted)
                    }
                case nil:
                    break  // the server may not limit a client that did not offer the parameter
                }
                let codec = PerMessageDeflate(
                    configuration: configuration,
                    localWindowBits: serverBits, localNoContextTakeover: response.serverNoContextTakeover,
                    peerWindowBits: clientBits, peerNoContextTakeover: response.clientNoContextTakeover
                )
                return (response.element, codec)
            }
            return nil
        }
    }

    /// The client's negotiation: one offer from the configuration, and the checks of the
    /// server's answer (RFC 7692 §7.1); an answer that breaks them fails the connection.
    public struct ClientNegotiator: ClientExtensionNegotiator {
        /// This side's settings and what it asks of the server.
        public var configuration: PerMessageDeflateConfiguration
        /// `permessage-deflate`.
        public var name: String { PerMessageDeflate.name }
        /// RSV1.
        public var reservedBits: ReservedBits { .rsv1 }

        /// A negotiator with `configuration` (zlib's defaults, context takeover, window 15 by default).
        public init(configuration: PerMessageDeflateConfiguration = PerMessageDeflateConfiguration()) {
            self.configuration = configuration
        }

        /// The offer: this side's limits as `client_*` parameters, the requests as `server_*` ones.
        public var offer: PerMessageDeflateParameters {
            PerMessageDeflateParameters(
                serverNoContextTakeover: configuration.requestPeerNoContextTakeover,
                clientNoContextTakeover: configuration.noContextTakeover,
                serverMaxWindowBits: configuration.requestPeerMaxWindowBits,
                clientMaxWindowBits: configuration.maxWindowBits < 15 ? .bits(configuration.maxWindowBits) : .supported
            )
        }

        /// One offer: ``offer`` as a `Sec-WebSocket-Extensions` element.
        public func offers() -> [ExtensionOffer] { [offer.element] }

        /// Checks the server's answer against the offer and makes the extension.
        /// - Throws: ``HandshakeError`` when the answer has an unknown, duplicate or invalid parameter, a
        ///   window above what was offered, lacks `server_no_context_takeover` that was asked for, or has
        ///   `client_max_window_bits` without a value.
        public func accept(response: ExtensionOffer) throws(HandshakeError) -> any WebSocketExtension {
            let answer: PerMessageDeflateParameters
            do {
                answer = try PerMessageDeflateParameters.parse(response, isResponse: true)
            } catch {
                throw HandshakeError.extensionRejected(name: name, reason: error.description)
            }
            let offer = self.offer
            if offer.serverNoContextTakeover && !answer.serverNoContextTakeover {
                throw HandshakeError.extensionRejected(name: name, reason: "server_no_context_takeover was requested but not accepted")
            }
            if let requested = offer.serverMaxWindowBits {
                guard let bits = answer.serverMaxWindowBits, bits <= requested else {
                    throw HandshakeError.extensionRejected(name: name, reason: "server_max_window_bits above the requested \(requested)")
                }
            }
            var clientBits = configuration.maxWindowBits
            if case .bits(let bits) = answer.clientMaxWindowBits {
                if case .bits(let limit) = offer.clientMaxWindowBits, bits > limit {
                    throw HandshakeError.extensionRejected(name: name, reason: "client_max_window_bits \(bits) above the offered \(limit)")
                }
                clientBits = min(clientBits, bits)
            }
            return PerMessageDeflate(
                configuration: configuration,
                localWindowBits: clientBits, localNoContextTakeover: answer.clientNoContextTakeover || configuration.noContextTakeover,
                peerWindowBits: answer.serverMaxWindowBits ?? 15, peerNoContextTakeover: answer.serverNoContextTakeover
            )
        }
    }
}
