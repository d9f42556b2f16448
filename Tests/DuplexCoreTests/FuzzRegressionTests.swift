import NIOCore
import Testing
@testable import DuplexCore

/// Inputs the fuzz targets in Fuzz/ found (see Fuzz/README.md), replayed as unit tests with the
/// configuration the target derived from them.
@Suite struct FuzzRegressionTests {
    /// FuzzConnection, crash-144fa9d4e5e852def820b1589ba99a7d262bab0f: with permessage-deflate and
    /// no message limit (`maxMessageSize: Int.max`), the first compressed frame trapped on the
    /// overflow of `maxOutput + 1` in `PerMessageDeflate.decode`: any peer could crash such a server.
    @Test func deflateWithoutMessageLimitDoesNotTrap() throws {
        // [config 0xF3] [split seed 0x89] [wire]: config 0xF3 = permessage-deflate, limits preset 0
        // (no limits, as the seed's top bit is set), no-context-takeover on both sides; the seed
        // gives the negotiation below.
        let input: [UInt8] = [
            0xF3, 0x89, 0x89, 0x89, 0x89, 0x89, 0x89, 0x89, 0x89, 0x89, 0x89, 0x89,
            0x89, 0x89, 0x89, 0x89, 0x89, 0x41, 0x89, 0x89, 0x89, 0x89, 0x89, 0x89,
            0x89, 0x89, 0x89, 0xC9, 0x89, 0x89, 0x89, 0x89, 0x00, 0x00, 0x0F, 0xFF,
            0x89, 0x00, 0x00, 0x59,
        ]
        let client = PerMessageDeflate.ClientNegotiator(configuration: .init(
            noContextTakeover: true, maxWindowBits: 13, requestPeerMaxWindowBits: 9, minimumMessageSize: 16))
        let server = PerMessageDeflate.ServerNegotiator(configuration: .init(
            noContextTakeover: true, maxWindowBits: 14, minimumMessageSize: 0))
        let (_, deflate) = try #require(server.accept(offers: client.offers()))
        var connection = Connection(role: .server,
                                    configuration: .init(limits: Limits(maxFrameSize: .max, maxMessageSize: .max)),
                                    extensions: [deflate])
        // A ping of 9 zero bytes, then an RSV1 text frame whose payload is a bad stored block.
        let events = feed(&connection, Array(input[2...]))
        #expect(events.count == 2)
        #expect(events.first == .ping(ByteBuffer(repeating: 0, count: 9)))
        #expect(failure(in: events)?.closeCode == .invalidPayloadData)
    }

    /// Without a limit, compressed messages inflate (RFC 7692 §7.2.3.1's "Hello"), through the
    /// codec and through a connection.
    @Test func deflateWithoutMessageLimitInflates() throws {
        let hello: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
        let codec = PerMessageDeflate(configuration: .init(), localWindowBits: 15, localNoContextTakeover: false,
                                      peerWindowBits: 15, peerNoContextTakeover: false)
        let decoded = try codec.decode(frame: ByteBuffer(bytes: hello), isFinal: true, maxOutput: .max)
        #expect(String(buffer: decoded) == "Hello")

        let (_, deflate) = try #require(PerMessageDeflate.ServerNegotiator().accept(offers: [ExtensionOffer(name: "permessage-deflate")]))
        var connection = Connection(role: .server,
                                    configuration: .init(limits: Limits(maxFrameSize: .max, maxMessageSize: .max)),
                                    extensions: [deflate])
        let events = feed(&connection, Wire.frame(to: .server, .text, hello, rsv: .rsv1))
        #expect(events == [.text(ByteBuffer(string: "Hello"))])
    }
}
