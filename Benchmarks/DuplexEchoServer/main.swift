// A Duplex WebSocket echo server for Benchmarks/run-load.sh: one echo endpoint at "/", keepalive
// pings off, no compression (no extensions), on a WebSocketServer with its own
// MultiThreadedEventLoopGroup. Two ways to write the endpoint:
//
//   --api callbacks   WebSocketCallbacks(onMessage: { ws, data in ws.send(data) }) on the event loop
//   --api async       WebSocketEndpoint { ws in for try await m in ws.messages { try await ws.send(m) } }
//
// Benchmark-only. It uses nothing but Duplex's public API (`import Duplex`, and NIOPosix for the event
// loop group), so that it keeps building while the library's internals change.
//
// Usage: duplex-echo-server [--host 127.0.0.1] [--port 8083] [--api callbacks|async] [--threads 1]

import Duplex
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum API: String {
    case callbacks
    case async
}

/// Writes a line to standard error (without the C `stderr` global, which strict concurrency refuses).
func printError(_ line: String) {
    var line = line + "\n"
    line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

struct Options {
    var host = "127.0.0.1"
    var port = 8083
    var api = API.callbacks
    var threads = 1

    init(arguments: [String]) {
        var it = arguments.makeIterator()
        while let arg = it.next() {
            func value() -> String {
                guard let v = it.next() else { Self.usage("missing value for \(arg)") }
                return v
            }
            func number() -> Int {
                guard let n = Int(value()), n > 0 else { Self.usage("bad value for \(arg)") }
                return n
            }
            switch arg {
            case "--host": host = value()
            case "--port": port = number()
            case "--threads": threads = number()
            case "--api":
                guard let api = API(rawValue: value()) else { Self.usage("--api must be callbacks or async") }
                self.api = api
            case "-h", "--help": Self.usage(nil)
            default: Self.usage("unknown argument \(arg)")
            }
        }
    }

    static func usage(_ error: String?) -> Never {
        if let error { printError("duplex-echo-server: \(error)") }
        printError("usage: duplex-echo-server [--host 127.0.0.1] [--port 8083] [--api callbacks|async] [--threads 1]")
        exit(error == nil ? 0 : 2)
    }
}

let options = Options(arguments: Array(CommandLine.arguments.dropFirst()))

let endpoint: WebSocketEndpoint
switch options.api {
case .callbacks:
    endpoint = WebSocketEndpoint(callbacks: WebSocketCallbacks(onMessage: { ws, data in
        ws.send(data)
    }))
case .async:
    endpoint = WebSocketEndpoint { ws in
        for try await message in ws.messages {
            try await ws.send(message)
        }
    }
}

var router = WebSocketRouter()
router.webSocket("/", endpoint)

let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
let server = WebSocketServer(
    configuration: .init(host: options.host, port: options.port, webSocket: WebSocketConfiguration(pingInterval: nil)),
    router: router,
    group: group
)
let address = try await server.start()
print("duplex-echo-server: echo endpoint ws://\(options.host):\(address.port ?? options.port)/ (api \(options.api.rawValue), \(options.threads) event loop(s))")
fflush(nil)  // all streams: the URL must show at once in a pipe too
try await server.run()
