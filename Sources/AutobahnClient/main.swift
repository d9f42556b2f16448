// autobahn-client: the Duplex client as the testee of Autobahn|Testsuite's fuzzing server
// (wstest -m fuzzingserver), driven by ../shared/autobahn/test-client.sh.
//
//   1. connect to $AUTOBAHN_URL/getCaseCount and read the number of cases, N;
//   2. for i in 1...N: connect to $AUTOBAHN_URL/runCase?case=i&agent=$AUTOBAHN_AGENT and echo
//      every message until the connection closes;
//   3. connect to $AUTOBAHN_URL/updateReports?agent=$AUTOBAHN_AGENT so the reports are written.
//
// The echo runs in event-loop callbacks (WebSocket.connect(to:configuration:callbacks:)), so a
// message is echoed before a protocol error that follows it in the same read fails the
// connection, as the suite's strict verdicts expect. AUTOBAHN_CLIENT_API=async echoes through
// the async API (`for try await message in ws.messages`) instead. The client offers
// permessage-deflate by default (sections 12 and 13); AUTOBAHN_CLIENT_DEFLATE=0 turns it off.
import Duplex
import Foundation

let environment = ProcessInfo.processInfo.environment
var base = environment["AUTOBAHN_URL"] ?? "ws://127.0.0.1:9001"
while base.hasSuffix("/") { base.removeLast() }
let agent = environment["AUTOBAHN_AGENT"] ?? "duplex-client"
let agentQuery = agent.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? agent
let useAsyncAPI = environment["AUTOBAHN_CLIENT_API"] == "async"

var configuration = WebSocketClientConfiguration()
// Cases 9.x send messages of up to 16 MiB; leave room above that.
configuration.webSocket.limits = Limits(maxFrameSize: 32 << 20, maxMessageSize: 32 << 20)
configuration.webSocket.outboundHardLimit = 64 << 20
// The fuzzer judges the exchange frame by frame: no keepalive pings of our own.
configuration.webSocket.pingInterval = nil
configuration.proxy = .none
if environment["AUTOBAHN_CLIENT_DEFLATE"] == "0" {
    configuration.extensions = []
}

func report(_ line: String) {
    FileHandle.standardError.write(Data("autobahn-client: \(line)\n".utf8))
}

/// Echoes every message until the connection closes; the fuzzer judges the outcome.
func runCase(_ url: String) async {
    do {
        let ws: WebSocketConnection
        if useAsyncAPI {
            ws = try await WebSocketConnection.connect(to: url, configuration: configuration)
            do {
                for try await message in ws.messages { try await ws.send(message) }
            } catch {
                // The connection failed or was closed: the close is already under way.
            }
        } else {
            ws = try await WebSocketConnection.connect(to: url, configuration: configuration, callbacks: WebSocketCallbacks(
                onMessage: { ws, data in ws.send(data) }
            ))
        }
        _ = await ws.waitForClose()
    } catch {
        report("\(url): \(error)")
    }
}

/// The text messages of one connection, until it closes.
func texts(_ url: String) async throws -> [String] {
    let ws = try await WebSocketConnection.connect(to: url, configuration: configuration)
    var texts: [String] = []
    do {
        for try await message in ws.messages {
            if case .text(let text) = message { texts.append(text) }
        }
    } catch {}
    _ = await ws.waitForClose()
    return texts
}

do {
    guard let count = try await texts(base + "/getCaseCount").first.flatMap({ Int($0) }), count > 0 else {
        report("no case count from \(base)/getCaseCount")
        exit(1)
    }
    print("\(count) cases to run (\(useAsyncAPI ? "async" : "callback") API)")
    let start = ContinuousClock.now
    for index in 1...count {
        await runCase("\(base)/runCase?case=\(index)&agent=\(agentQuery)")
    }
    _ = try await texts("\(base)/updateReports?agent=\(agentQuery)")
    print("done: \(count) cases in \(ContinuousClock.now - start)")
} catch {
    report("\(error)")
    exit(1)
}
