import Foundation

/// Lines of stdin as raw bytes (without the line break), read on a thread of their own so that
/// no event loop or cooperative thread ever blocks on the terminal or a pipe. The thread reads at
/// most `window` lines ahead of the consumer, so a large piped file is not loaded into memory.
struct StdinLines: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let stream: AsyncStream<[UInt8]>
    let window: DispatchSemaphore

    static func start(window: Int = 256) -> StdinLines {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        // Made at 0 and raised to `window`: libdispatch traps when a semaphore is freed below the
        // value it was made with, which happens here whenever the command stops before stdin ends.
        let semaphore = DispatchSemaphore(value: 0)
        for _ in 0..<window { semaphore.signal() }
        let thread = Thread {
            // read(2) on the descriptor, split at newlines: raw bytes, whatever their encoding.
            var pending: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 64 << 10)
            func emit(_ line: ArraySlice<UInt8>) {
                var bytes = Array(line)
                if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
                semaphore.wait()
                continuation.yield(bytes)
            }
            while true {
                let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                pending += chunk[0..<count]
                var start = 0
                while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    emit(pending[start..<newline])
                    start = newline + 1
                }
                pending.removeFirst(start)
            }
            if !pending.isEmpty { emit(pending[...]) }
            continuation.finish()
        }
        thread.start()
        return StdinLines(stream: stream, window: semaphore)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<[UInt8]>.AsyncIterator
        let window: DispatchSemaphore

        mutating func next() async -> [UInt8]? {
            guard let line = await base.next() else { return nil }
            window.signal()
            return line
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: stream.makeAsyncIterator(), window: window) }
}
