import Duplex
import Foundation
import NIOCore
import Testing

/// What every broker must do, checked against two `duplex serve` instances A and B on it.
enum CrossInstanceChecks {
    /// A topic name no other test uses (the brokers are shared by the tests of a process).
    static func uniqueTopic(_ name: String) -> String {
        "\(name)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    static func payload(_ count: Int, seed: UInt8) -> ByteBuffer {
        ByteBuffer(bytes: (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31) ^ seed })
    }

    /// Subscribers on A receive, in order and once, what is published on B by a WebSocket client
    /// and by `POST /publish`: text and binary, small and over 8,000 bytes. B's own subscriber
    /// gets each message once (its instance drops its own messages coming back from the broker).
    static func publishedOnBArrivesOnA(_ a: ServeInstance, _ b: ServeInstance) async throws {
        let room = uniqueTopic("room")
        let subscriber = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(a.port)/topics/\(room)")
        let onA = MessageCollector(subscriber)
        try await waitUntilSubscribedAcross(onA, publisher: b, topic: room)

        let sender = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(b.port)/topics/\(room)")
        let onB = MessageCollector(sender)
        try await eventually("B's sender to be subscribed") { b.server.subscriberCount(of: room) == 1 }
        var expected: [WebSocketMessage] = (0..<50).map { .text("ws-\($0)") }
        expected += [.binary(payload(3, seed: 1)), .binary(payload(9_000, seed: 2)), .text(String(repeating: "é", count: 4_500)),
                     .binary(payload(200_000, seed: 3))]
        for message in expected { try await sender.send(message) }
        #expect(try await onA.wait(for: expected.count) == expected)
        #expect(try await onB.wait(for: expected.count) == expected)

        var posted: [WebSocketMessage] = (0..<10).map { .text("post-\($0)") }
        posted += [.binary(payload(9_000, seed: 4)), .text(String(repeating: "x", count: 8_100))]
        for message in posted {
            let (contentType, body): (String, ByteBuffer) = switch message {
            case .text(let text): ("text/plain; charset=utf-8", ByteBuffer(string: text))
            case .binary(let bytes): ("application/octet-stream", bytes)
            }
            let answer = try await httpRequest(port: b.port, method: "POST", path: "/publish/\(room)", contentType: contentType, body: body)
            #expect(answer.status == 200, "\(answer.body)")
        }
        #expect(try await onA.wait(for: expected.count + posted.count) == expected + posted)
        // Nothing more arrives: no duplicates, on either side.
        try await Task.sleep(for: .milliseconds(200))
        #expect(onA.messages.count == expected.count + posted.count)
        #expect(onB.messages.count == expected.count + posted.count)
        _ = try await sender.close()
        _ = try await subscriber.close()
    }

    /// The broker restarts under A and B: local delivery goes on meanwhile, `/healthz` says
    /// degraded (503), and delivery from B to A resumes within 5 s, with no restart of A or B.
    static func deliveryResumesAfterABrokerRestart(_ a: ServeInstance, _ b: ServeInstance, broker: any BrokerProcess) async throws {
        let subscriber = try await WebSocketConnection.connect(to: "ws://127.0.0.1:\(a.port)/topics/room")
        let onA = MessageCollector(subscriber)
        try await waitUntilSubscribedAcross(onA, publisher: b)
        #expect(try await httpRequest(port: a.port, method: "GET", path: "/healthz").status == 200)

        try await broker.stop()
        try await eventually("A to notice the broker went away") {
            try await httpRequest(port: a.port, method: "GET", path: "/healthz").status == 503
        }
        let health = try await httpRequest(port: a.port, method: "GET", path: "/healthz")
        #expect(health.body.contains(#""status":"degraded""#) && health.body.contains("reconnecting"), "\(health.body)")
        a.server.publish(.text("local while away"), to: "room")
        #expect(try await onA.wait(for: 1) == [.text("local while away")])

        // The 5 s count from when the broker is up again (PostgreSQL's start, a crash recovery,
        // is the broker's time, not the instances').
        try await broker.start()
        let restarted = ContinuousClock.now
        var sent = 0
        while onA.messages.count < 2 && ContinuousClock.now - restarted < .seconds(5) {
            b.server.publish(.text("after \(sent)"), to: "room")
            sent += 1
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(onA.messages.count >= 2, "delivery did not resume within 5 s of the restart")
        // From the first message through, every later one arrives, in order.
        try await Task.sleep(for: .milliseconds(300))
        let resumed = Array(onA.messages.dropFirst())
        guard case .text(let text)? = resumed.first, text.hasPrefix("after "), let first = Int(text.dropFirst(6)) else {
            Issue.record("unexpected \(resumed)")
            return
        }
        #expect(resumed == (first..<sent).map { .text("after \($0)") })
        let final: [WebSocketMessage] = (0..<5).map { .text("final \($0)") }
        for message in final { b.server.publish(message, to: "room") }
        #expect(try await onA.wait(for: 1 + resumed.count + final.count).suffix(final.count) == final[...])
        try await eventually("A to say it is connected again") {
            try await httpRequest(port: a.port, method: "GET", path: "/healthz").status == 200
        }
        _ = try await subscriber.close()
    }
}
