import Duplex
import Foundation
import NIOCore

// swift run reconnecting-client ws://127.0.0.1:8080/topics/ticker
// Stop the server and start it again: the client waits (exponential backoff with jitter, capped
// at 10 s) and reconnects; every connection's close code stays visible.
guard let url = CommandLine.arguments.dropFirst().first else {
    print("usage: reconnecting-client ws://HOST:PORT/PATH [HELLO]")
    exit(64)
}
let hello = CommandLine.arguments.dropFirst(2).first

var policy = ReconnectPolicy()
policy.initialDelay = .milliseconds(250)
policy.maxDelay = .seconds(10)
policy.maxAttempts = nil  // forever; ReconnectPolicy.shouldRetry still gives up on permanent errors (a 404, a bad URL)

var connection = 0
do {
    for try await ws in try WebSocketConnection.reconnecting(to: url, policy: policy) {
        connection += 1
        print("connection \(connection) open" + (ws.subprotocol.map { " (\($0))" } ?? ""))
        // What a real client re-sends on every connection: its subscriptions, an auth token, ...
        if let hello { try? await ws.send(text: hello) }
        do {
            for try await message in ws.messages {
                switch message {
                case .text(let text): print(text)
                case .binary(let bytes): print("binary message of \(bytes.readableBytes) bytes")
                }
            }
        } catch {
            // Dropped: the close below says how; the sequence reconnects.
        }
        print("connection \(connection) closed: \(ws.closeFrame.map { "\($0)" } ?? "?"); reconnecting")
    }
} catch {
    print("gave up: \(error)")
    exit(1)
}
