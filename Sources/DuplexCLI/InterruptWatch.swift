import Dispatch
import Foundation

/// Ctrl-C for a command that wants to end politely: the first SIGINT calls `onFirst` (for
/// `duplex connect`, a close frame with 1000), a second one exits at once with status 130 (the
/// shell's convention for SIGINT). Until ``stop()`` SIGINT no longer kills the process by itself.
final class InterruptWatch: @unchecked Sendable {  // the source and count are touched only on `queue`
    private let source: DispatchSourceSignal
    private let queue = DispatchQueue(label: "duplex.interrupts")
    private var count = 0

    private init(onFirst: @escaping @Sendable () -> Void) {
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: queue)
        source.setEventHandler { [unowned self] in
            count += 1
            if count == 1 { onFirst() } else { exit(130) }
        }
    }

    /// Starts watching SIGINT.
    static func start(onFirst: @escaping @Sendable () -> Void) -> InterruptWatch {
        let watch = InterruptWatch(onFirst: onFirst)
        signal(SIGINT, SIG_IGN)  // the dispatch source sees it; the default action would kill us first
        watch.source.resume()
        return watch
    }

    /// Stops watching: SIGINT kills the process again.
    func stop() {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
}
