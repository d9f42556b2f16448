/// Which end of the connection this is. Clients mask every frame they send and expect
/// unmasked frames; servers expect masked frames and send unmasked ones (RFC 6455 §5.1).
public enum Role: Sendable, Hashable {
    /// The accepting end: receives masked frames, sends unmasked ones.
    case server
    /// The connecting end: masks every frame it sends, refuses masked frames.
    case client
}
