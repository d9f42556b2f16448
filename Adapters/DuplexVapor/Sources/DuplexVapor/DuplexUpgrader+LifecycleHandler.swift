import Duplex
import Vapor

/// The upgrader in a Vapor app's lifecycle: `app.lifecycle.use(upgrader)`. When the app shuts
/// down, its WebSockets get 1001 (going away), up to the upgrader's
/// ``Duplex/DuplexUpgrader/Configuration/shutdownGracePeriod`` to close, and the rest are
/// closed (``Duplex/DuplexUpgrader/shutdown(gracePeriod:)``).
extension DuplexUpgrader: @retroactive LifecycleHandler {
    /// Shuts the upgrader's WebSockets down gracefully, as the app shuts down.
    public func shutdownAsync(_ application: Application) async {
        await shutdown()
    }
}
