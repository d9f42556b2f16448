/// Which end of the connection this is. Clients mask every frame they send and expect
/// unmasked frames; servers expect masked frames and send unmasked ones (RFC 6455 §5.1).
public enum Role: Sendable, Hashable {
    case server
    case client
}
