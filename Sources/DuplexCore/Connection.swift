import NIOCore

/// One WebSocket connection's protocol state, for either role, with no I/O (sans-I/O).
///
/// Bytes in, events out: ``receive(_:)`` buffers what the transport read and ``nextEvent()``
/// returns messages, pings, pongs, the peer's close, or a failure. Intents in, bytes out:
/// ``send(text:fragmentSize:)``, ``send(binary:fragmentSize:)``, ``ping(_:)``, ``close(code:reason:)``
/// (and the automatic replies to pings and closes) append frames to an outbound buffer that
/// the transport drains with ``takeOutbound()``.
///
/// Time in, actions out (all optional, see ConnectionTimers.swift): the driver reports the time
/// with ``start(at:)``, ``receive(_:at:)``, ``close(code:reason:at:)`` and ``ping(_:at:)``, and
/// calls ``timerFired(at:)`` at ``nextDeadline``; the core decides when to send keepalive pings
/// and when a pong, idle or close timeout ends the connection. The core never reads a clock.
///
/// The driver owns the transport: it closes it when ``shouldCloseTransport`` becomes true, and
/// reports its end with ``transportClosed()``.
public struct Connection {
    /// Settings of the protocol state machine.
    public struct Configuration: Sendable {
        /// Frame and message size limits. Default: ``Limits/default``.
        public var limits: Limits
        /// Answer every ping with a pong carrying its payload. Default: true.
        public var autoPong: Bool
        /// Send a keepalive ping this long after ``Connection/start(at:)`` and after each answer
        /// to the previous one; nil sends none. Default: nil.
        public var pingInterval: Duration?
        /// How long a keepalive ping may wait for its pong before ``pongTimeoutAction``.
        /// Default: 20 seconds.
        public var pongTimeout: Duration
        /// What to do when a keepalive ping gets no pong in time. Default: close with 1011.
        public var pongTimeoutAction: Connection.PongTimeoutAction
        /// Close with 1001 (going away), reason "idle timeout", when nothing was received for
        /// this long; nil never does. Default: nil.
        public var idleTimeout: Duration?
        /// After this side sent its close frame with ``Connection/close(code:reason:at:)`` (or the
        /// core started the close on a timeout), or after a client completed the closing
        /// handshake, wait this long for the peer before ``Connection/shouldCloseTransport``
        /// becomes true; nil waits forever. Default: nil.
        public var closeTimeout: Duration?

        /// - Parameters:
        ///   - limits: frame and message size limits.
        ///   - autoPong: answer every ping with a pong.
        ///   - pingInterval: keepalive ping interval, nil for none.
        ///   - pongTimeout: how long a keepalive ping waits for its pong.
        ///   - pongTimeoutAction: what a pong timeout does.
        ///   - idleTimeout: close after receiving nothing for this long, nil for never.
        ///   - closeTimeout: how long the closing handshake may take, nil for forever.
        public init(
            limits: Limits = .default,
            autoPong: Bool = true,
            pingInterval: Duration? = nil,
            pongTimeout: Duration = .seconds(20),
            pongTimeoutAction: Connection.PongTimeoutAction = .close(.internalError),
            idleTimeout: Duration? = nil,
            closeTimeout: Duration? = nil
        ) {
            self.limits = limits
            self.autoPong = autoPong
            self.pingInterval = pingInterval
            self.pongTimeout = pongTimeout
            self.pongTimeoutAction = pongTimeoutAction
            self.idleTimeout = idleTimeout
            self.closeTimeout = closeTimeout
        }
    }

    /// Whether this end is the client (masks what it sends) or the server (requires masked frames).
    public let role: Role
    /// The limits, keepalive and timeouts this connection was made with.
    public let configuration: Configuration
    /// Where the closing handshake is. (Set internally: the timer rules in ConnectionTimers.swift
    /// move it to closed when a pong timeout drops the transport.)
    public internal(set) var state: ConnectionState = .open
    /// The close frame this side sent, once sent.
    public private(set) var closeSent: CloseFrame?
    /// The close frame the peer sent, once received.
    public private(set) var closeReceived: CloseFrame?
    /// The protocol error that failed the connection, if one did.
    public private(set) var failure: ProtocolError?

    @usableFromInline var parser: FrameParser
    @usableFromInline var outbound: ByteBuffer
    @usableFromInline let extensions: [any WebSocketExtension]
    /// Deadlines, outstanding pings and timer decisions (see ConnectionTimers.swift).
    @usableFromInline var timers = ConnectionTimers()

    // The message being received.
    var messageOpcode: Opcode?
    var messageReservedBits: ReservedBits = []
    var messageBuffer: ByteBuffer?
    var messageSize = 0
    var utf8 = UTF8Validator()
    /// Whether the pending frame header passed the message-level checks.
    var headerChecked = false
    /// Bytes of the pending frame's payload already validated as UTF-8 (fail-fast).
    var frameValidated = 0

    /// - Parameters:
    ///   - role: client or server.
    ///   - configuration: limits and automatic pongs.
    ///   - extensions: the extensions negotiated in the opening handshake, in the order of the
    ///     response header. Messages are encoded in this order and decoded in the reverse one.
    public init(role: Role, configuration: Configuration = Configuration(), extensions: [any WebSocketExtension] = []) {
        self.role = role
        self.configuration = configuration
        self.extensions = extensions
        let bits = extensions.reduce(into: ReservedBits()) { $0.formUnion($1.reservedBits) }
        self.parser = FrameParser(role: role, allowedReservedBits: bits, maxFrameSize: configuration.limits.maxFrameSize)
        self.outbound = ByteBuffer.sharedEmpty
    }

    // MARK: - Receiving

    /// Adds bytes read from the transport. Call ``nextEvent()`` until it returns nil.
    public mutating func receive(_ bytes: ByteBuffer) {
        guard failure == nil, closeReceived == nil else { return }
        parser.append(bytes)
    }

    /// The next event from the bytes received so far, or nil when more bytes are needed (or
    /// the connection accepts no more input: after the peer's close frame or a failure).
    public mutating func nextEvent() -> ConnectionEvent? {
        guard failure == nil, closeReceived == nil else { return nil }
        do {
            while true {
                guard let header = try parser.nextHeader() else { return nil }
                if !headerChecked {
                    try checkMessageRules(header)
                    headerChecked = true
                }
                guard let payload = parser.takePayload() else {
                    try validateArrivedText(of: header)
                    return nil
                }
                headerChecked = false
                if let event = try handleFrame(header, payload) { return event }
            }
        } catch {
            return fail(error)
        }
    }

    /// Message-level rules, checked as soon as a header is complete.
    mutating func checkMessageRules(_ header: FrameHeader) throws(ProtocolError) {
        switch header.opcode {
        case .continuation:
            guard messageOpcode != nil else { throw ProtocolError(.unexpectedContinuation) }
            // Extensions mark the first frame of a message only (RFC 7692 §6.1).
            guard header.reservedBits.isEmpty else { throw ProtocolError(.reservedBitsSet(header.reservedBits)) }
        case .text, .binary:
            guard messageOpcode == nil else { throw ProtocolError(.expectedContinuation) }
            messageOpcode = header.opcode
            messageReservedBits = header.reservedBits
            messageSize = 0
            utf8 = UTF8Validator()
        case .close, .ping, .pong:
            // Extensions transform data messages only: no one owns an RSV bit on a control frame.
            guard header.reservedBits.isEmpty else { throw ProtocolError(.reservedBitsSet(header.reservedBits)) }
            return
        }
        frameValidated = 0
        // Decoded sizes are checked while decoding; raw sizes can be checked before buffering.
        // (Subtract rather than add: with a huge frame limit, messageSize + payloadLength could overflow.)
        if messageReservedBits.isEmpty && header.payloadLength > configuration.limits.maxMessageSize - messageSize {
            throw ProtocolError(.messageTooBig(limit: configuration.limits.maxMessageSize))
        }
    }

    /// Fails fast on invalid UTF-8 in the part of a text frame that has arrived.
    mutating func validateArrivedText(of header: FrameHeader) throws(ProtocolError) {
        guard !header.opcode.isControl, messageOpcode == .text, messageReservedBits.isEmpty else { return }
        let arrived = parser.availablePayloadCount
        guard arrived > frameValidated else { return }
        var validator = utf8
        let invalidAt = parser.withAvailablePayload(from: frameValidated) { validator.validate($0) }
        utf8 = validator
        frameValidated = arrived
        if invalidAt != nil { throw ProtocolError(.invalidUTF8) }
    }

    mutating func handleFrame(_ header: FrameHeader, _ payload: ByteBuffer) throws(ProtocolError) -> ConnectionEvent? {
        switch header.opcode {
        case .ping:
            if configuration.autoPong && state == .open {
                writeFrame(fin: true, reservedBits: [], opcode: .pong, payload: payload)
            }
            return .ping(payload)
        case .pong:
            if !timers.outstanding.isEmpty { acknowledgePings(payload) }
            return .pong(payload)
        case .close:
            return try handleClose(payload)
        case .text, .binary, .continuation:
            return try handleData(header, payload)
        }
    }

    mutating func handleData(_ header: FrameHeader, _ payload: ByteBuffer) throws(ProtocolError) -> ConnectionEvent? {
        let isText = messageOpcode == .text
        var data = payload
        let limit = configuration.limits.maxMessageSize
        if messageReservedBits.isEmpty {
            messageSize += payload.readableBytes
            if isText { try validate(data, from: frameValidated) }
        } else {
            for ext in extensions.reversed() where !ext.reservedBits.isDisjoint(with: messageReservedBits) {
                do {
                    data = try ext.decode(frame: data, isFinal: header.fin, maxOutput: limit - messageSize)
                } catch {
                    throw error.protocolError
                }
            }
            messageSize += data.readableBytes
            if messageSize > limit { throw ProtocolError(.messageTooBig(limit: limit)) }
            if isText { try validate(data, from: 0) }
        }
        guard header.fin else {
            if messageBuffer == nil {
                messageBuffer = ByteBuffer()
                messageBuffer!.reserveCapacity(data.readableBytes * 2)
            }
            messageBuffer!.writeBuffer(&data)
            return nil
        }
        if isText && !utf8.isComplete { throw ProtocolError(.invalidUTF8) }
        var message = data
        if var assembled = messageBuffer {
            messageBuffer = nil
            assembled.writeBuffer(&data)
            message = assembled
        }
        messageOpcode = nil
        messageReservedBits = []
        return isText ? .text(message) : .binary(message)
    }

    mutating func validate(_ bytes: ByteBuffer, from offset: Int) throws(ProtocolError) {
        guard offset < bytes.readableBytes else { return }
        var validator = utf8
        let invalidAt = bytes.withUnsafeReadableBytes { raw in
            validator.validate(UnsafeRawBufferPointer(rebasing: raw[offset...]))
        }
        utf8 = validator
        if invalidAt != nil { throw ProtocolError(.invalidUTF8) }
    }

    mutating func handleClose(_ payload: ByteBuffer) throws(ProtocolError) -> ConnectionEvent {
        let frame = try Self.parseClosePayload(payload)
        closeReceived = frame
        // A fragmented message interrupted by a close is dropped (Autobahn 7.1.5 expects the echo).
        messageOpcode = nil
        messageBuffer = nil
        switch state {
        case .open:
            // Echo the peer's code (RFC 6455 §5.5.1); an empty close is answered with an empty one.
            var reply = ByteBuffer()
            if let code = frame.code { reply.writeInteger(code.rawValue) }
            writeFrame(fin: true, reservedBits: [], opcode: .close, payload: reply)
            closeSent = CloseFrame(code: frame.code)
            state = .closed
        case .closing:
            state = .closed
        case .closed:
            break
        }
        timersAfterPeerClose()
        return .close(frame)
    }

    /// Parses and validates a close frame's payload: empty, or a valid code and a UTF-8 reason.
    public static func parseClosePayload(_ payload: ByteBuffer) throws(ProtocolError) -> CloseFrame {
        switch payload.readableBytes {
        case 0:
            return CloseFrame(code: nil)
        case 1:
            throw ProtocolError(.invalidClosePayload)
        default:
            var payload = payload
            let code = CloseCode(payload.readInteger(as: UInt16.self)!)
            guard code.isValidOnWire else { throw ProtocolError(.invalidCloseCode(code.rawValue)) }
            guard UTF8Validator.isValid(payload.readableBytesView) else { throw ProtocolError(.invalidUTF8) }
            return CloseFrame(code: code, reason: String(buffer: payload))
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7): queue a close frame with the error's code, accept nothing more.
    mutating func fail(_ error: ProtocolError) -> ConnectionEvent {
        failure = error
        if state == .open {
            let reason = String(error.description.utf8.prefix(123)) ?? ""
            var payload = ByteBuffer()
            payload.writeInteger(error.closeCode.rawValue)
            payload.writeString(reason)
            writeFrame(fin: true, reservedBits: [], opcode: .close, payload: payload)
            closeSent = CloseFrame(code: error.closeCode, reason: reason)
        }
        state = .closed
        messageOpcode = nil
        messageBuffer = nil
        timers.disarmAll()  // the transport closes at once (shouldCloseTransport)
        return .failed(error)
    }

    // MARK: - Sending

    /// Queues a text message, fragmented into frames of at most `fragmentSize` payload bytes if set.
    public mutating func send(text: String, fragmentSize: Int? = nil) throws(SendError) {
        try send(.text, payload: ByteBuffer(string: text), fragmentSize: fragmentSize)
    }

    /// Queues a binary message, fragmented into frames of at most `fragmentSize` payload bytes if set.
    public mutating func send(binary: ByteBuffer, fragmentSize: Int? = nil) throws(SendError) {
        try send(.binary, payload: binary, fragmentSize: fragmentSize)
    }

    /// Queues a data message. For `.text`, `payload` must be valid UTF-8 (it is not checked
    /// again: an echo can send received text bytes as they are).
    public mutating func send(_ opcode: Opcode, payload: ByteBuffer, fragmentSize: Int? = nil) throws(SendError) {
        precondition(opcode == .text || opcode == .binary, "data messages are text or binary")
        guard state == .open else { throw SendError.notOpen }
        if let size = fragmentSize, size <= 0 { throw SendError.invalidFragmentSize(size) }
        var (payload, bits) = try encode(opcode, payload)
        guard let size = fragmentSize, payload.readableBytes > size else {
            writeFrame(fin: true, reservedBits: bits, opcode: opcode, payload: payload)
            return
        }
        var first = true
        while payload.readableBytes > 0 {
            let chunk = payload.readSlice(length: min(size, payload.readableBytes))!
            writeFrame(fin: payload.readableBytes == 0, reservedBits: first ? bits : [],
                       opcode: first ? opcode : .continuation, payload: chunk)
            first = false
        }
    }

    /// The bytes ``send(_:payload:fragmentSize:)`` queues for a data message of `payloadLength`
    /// bytes that no extension resizes: every frame's header (masked in the client role) and the
    /// payload, in frames of at most `fragmentSize` payload bytes if set. Backpressure counts a
    /// message with it (for permessage-deflate, uncompressed: the limit is decided before encoding).
    public func outboundSize(ofMessage payloadLength: Int, fragmentSize: Int? = nil) -> Int {
        let masked = role == .client
        guard let size = fragmentSize, size > 0, payloadLength > size else {
            return FrameHeader.encodedSize(payloadLength: payloadLength, masked: masked) + payloadLength
        }
        let (whole, rest) = payloadLength.quotientAndRemainder(dividingBy: size)
        return whole * FrameHeader.encodedSize(payloadLength: size, masked: masked)
            + (rest > 0 ? FrameHeader.encodedSize(payloadLength: rest, masked: masked) : 0) + payloadLength
    }

    /// A message's payload as the negotiated extensions encode it, with the RSV bits they set.
    mutating func encode(_ opcode: Opcode, _ payload: ByteBuffer) throws(SendError) -> (ByteBuffer, ReservedBits) {
        var payload = payload
        var bits: ReservedBits = []
        for ext in extensions {
            do {
                if let encoded = try ext.encode(message: payload, opcode: opcode) {
                    payload = encoded.payload
                    bits.formUnion(encoded.reservedBits)
                }
            } catch {
                throw SendError.extensionFailed(error)
            }
        }
        return (payload, bits)
    }

    /// Queues a ping with up to 125 bytes of payload.
    public mutating func ping(_ payload: ByteBuffer = ByteBuffer()) throws(SendError) {
        try sendControl(.ping, payload)
    }

    /// Queues an unsolicited pong (a heartbeat that expects no answer) or a manual answer to a ping.
    public mutating func pong(_ payload: ByteBuffer = ByteBuffer()) throws(SendError) {
        try sendControl(.pong, payload)
    }

    mutating func sendControl(_ opcode: Opcode, _ payload: ByteBuffer) throws(SendError) {
        guard state == .open else { throw SendError.notOpen }
        guard payload.readableBytes <= 125 else { throw SendError.controlPayloadTooLong(payload.readableBytes) }
        writeFrame(fin: true, reservedBits: [], opcode: opcode, payload: payload)
    }

    /// Starts the closing handshake: queues a close frame and moves to ``ConnectionState/closing``.
    /// Does nothing if this side already sent its close frame.
    /// - Parameters:
    ///   - code: a code that may be sent (see ``CloseCode/isValidOnWire``), or nil for an empty close frame.
    ///   - reason: at most 123 bytes of UTF-8; only sent with a code.
    public mutating func close(code: CloseCode? = .normalClosure, reason: String = "") throws(SendError) {
        if let code, !code.isValidOnWire { throw SendError.invalidCloseCode(code) }
        let reasonLength = reason.utf8.count
        guard reasonLength <= 123 else { throw SendError.closeReasonTooLong(reasonLength) }
        guard state == .open else { return }
        var payload = ByteBuffer()
        if let code {
            payload.writeInteger(code.rawValue)
            payload.writeString(reason)
        }
        writeFrame(fin: true, reservedBits: [], opcode: .close, payload: payload)
        closeSent = CloseFrame(code: code, reason: code == nil ? "" : reason)
        state = .closing
        timers.disarmOpenTimers()
    }

    @usableFromInline
    mutating func writeFrame(fin: Bool, reservedBits: ReservedBits, opcode: Opcode, payload: ByteBuffer) {
        FrameWriter.write(fin: fin, reservedBits: reservedBits, opcode: opcode,
                          maskKey: role == .client ? MaskKey.random() : nil, payload: payload, to: &outbound)
    }

    // MARK: - Transport

    /// Whether ``send(_:payload:fragmentSize:)`` (without fragments) writes a data message as
    /// one plain, unmasked frame of its payload: server role, no extension that transforms
    /// messages. Then a frame built once can be written for this connection as it is, which is
    /// how a topic's fan-out shares one frame between its subscribers.
    @inlinable public var sendsPlainFrames: Bool { role == .server && extensions.isEmpty }

    /// For a connection whose extension encodes each message on its own (permessage-deflate
    /// without context takeover on this side): a key shared by every connection that encodes a
    /// message to the same frame (see ``WebSocketExtension/sharedEncodingKey``), so the frame
    /// from ``encodeForSharing(_:payload:)`` of one of them can be written for all. Server role
    /// only (client frames are masked one by one); nil otherwise.
    public var sharedEncodingKey: AnyHashable? {
        guard role == .server, extensions.count == 1 else { return nil }
        return extensions[0].sharedEncodingKey
    }

    /// The complete frame (header and encoded payload) that ``send(_:payload:fragmentSize:)``
    /// would queue for this message, without queuing it: for writing the same bytes to every
    /// connection with the same ``sharedEncodingKey``.
    public mutating func encodeForSharing(_ opcode: Opcode, payload: ByteBuffer) throws(SendError) -> ByteBuffer {
        precondition(opcode == .text || opcode == .binary, "data messages are text or binary")
        guard state == .open else { throw SendError.notOpen }
        let (payload, bits) = try encode(opcode, payload)
        var frame = ByteBuffer()
        FrameWriter.write(fin: true, reservedBits: bits, opcode: opcode, maskKey: nil, payload: payload, to: &frame)
        return frame
    }

    /// True when bytes are waiting to be written.
    @inlinable public var hasOutbound: Bool { outbound.readableBytes > 0 }

    /// The bytes to write to the transport, in order; nil when there are none.
    public mutating func takeOutbound() -> ByteBuffer? {
        guard outbound.readableBytes > 0 else { return nil }
        let bytes = outbound
        outbound = ByteBuffer.sharedEmpty
        return bytes
    }

    /// Whether this side should now close the transport (after writing ``takeOutbound()``):
    /// the server once the closing handshake is complete, either side once the connection failed,
    /// and either side once a timer decided so (the close timeout expired, or a pong timeout
    /// with ``PongTimeoutAction/dropTransport``).
    /// A client that completed a normal close waits for the server to close first (RFC 6455 §7.1.1)
    /// and closes itself only when its close timeout fires.
    @inlinable public var shouldCloseTransport: Bool {
        (state == .closed && (role == .server || failure != nil)) || timers.mustCloseTransport
    }

    /// Whether both close frames were exchanged (a clean close, RFC 6455 §7.1.4).
    public var isCleanlyClosed: Bool { closeSent != nil && closeReceived != nil && failure == nil }

    /// The transport closed: nothing more can be sent or received. Frees extension resources
    /// and disarms every timer (``nextDeadline`` is nil from now on).
    public mutating func transportClosed() {
        state = .closed
        timers.stopped = true
        timers.disarmAll()
        shutdownExtensions()
    }

    var extensionsShutDown = false

    mutating func shutdownExtensions() {
        guard !extensionsShutDown else { return }
        extensionsShutDown = true
        for ext in extensions { ext.shutdown() }
    }

    /// The close code and reason to report to the application once the connection is over:
    /// the peer's close frame (1005 if it had no code), or 1006 if none arrived (or if a pong
    /// timeout dropped the transport, reason "keepalive ping timeout").
    public var closeResult: CloseFrame {
        if timers.dropped { return CloseFrame(code: .abnormalClosure, reason: "keepalive ping timeout") }
        if let failure { return CloseFrame(code: failure.closeCode, reason: failure.description) }
        if let received = closeReceived { return CloseFrame(code: received.code ?? .noStatusReceived, reason: received.reason) }
        return CloseFrame(code: .abnormalClosure)
    }
}
