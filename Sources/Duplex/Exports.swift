// What a server or client author needs from DuplexCore and swift-http-types, and nothing more:
// the protocol core's machinery (Connection, Frame, FrameParser, Role, ...) stays out of a Duplex
// user's namespace. Code that drives the core imports DuplexCore itself.

@_exported import struct DuplexCore.CloseCode
@_exported import struct DuplexCore.CloseFrame
@_exported import struct DuplexCore.Limits
@_exported import enum DuplexCore.HandshakeError
@_exported import enum DuplexCore.SendError
@_exported import protocol DuplexCore.ServerExtensionNegotiator
@_exported import protocol DuplexCore.ClientExtensionNegotiator
@_exported import class DuplexCore.PerMessageDeflate
@_exported import struct DuplexCore.PerMessageDeflateConfiguration

// The HTTP vocabulary of routes, upgrade hooks and client headers. These are swift-http-types'
// own declarations, the ones Hummingbird exports too: importing both never makes them ambiguous.
@_exported import struct HTTPTypes.HTTPRequest
@_exported import struct HTTPTypes.HTTPResponse
@_exported import struct HTTPTypes.HTTPFields
@_exported import struct HTTPTypes.HTTPField
