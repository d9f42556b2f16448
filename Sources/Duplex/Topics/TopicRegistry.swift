import NIOConcurrencyHelpers
import NIOCore

/// A topic's local subscriber count crossed zero: the seam for fan-out across server instances
/// (a broker subscribes this instance to a topic on the first local subscriber and unsubscribes
/// it after the last).
public enum TopicTransition: Sendable, Hashable {
    /// The topic got its first subscriber on this server (0 → 1).
    case firstSubscriber(topic: String)
    /// The topic's last subscriber on this server left (1 → 0).
    case lastSubscriberLeft(topic: String)
}

/// The topics of one server: which connections subscribe to what, grouped by event loop, and
/// publishing to them.
///
/// The shape of a publish: the frame is built once (``SharedFrame``); the registry's lock is held
/// only to take the topic's groups (one per event loop with subscribers: a handful of
/// references, not the subscribers); each group gets one hop to its loop (none for the
/// publisher's own loop), where every subscriber's driver writes the same bytes and asks for one
/// flush per turn of the loop (``LoopFlusher``).
///
/// Guarantees (as uWebSockets v20's): messages from one publisher to one topic arrive in publish
/// order (one FIFO hop per loop); a connection's subscribe and unsubscribe are ordered with its
/// own sends and publishes (all run on its loop); delivery is at-most-once: a subscriber whose
/// outbound buffer is over its hard limit meets its backpressure policy (close 1013 by
/// default, or drop), and never delays the others.
final class TopicRegistry: Sendable {
    private struct Topic {
        var count = 0
        var groups: [GroupReference] = []
    }

    /// A group, usable from any thread only to hop to its loop, and its identity.
    private struct GroupReference: Sendable {
        let id: ObjectIdentifier
        let group: NIOLoopBound<TopicGroup>
        var eventLoop: any EventLoop { group.eventLoop }
    }

    private let topics = NIOLockedValueBox<[String: Topic]>([:])
    private let observer = NIOLockedValueBox<(@Sendable (TopicTransition) -> Void)?>(nil)
    private let metrics = TopicMetrics()
    private let relay = NIOLockedValueBox<(any TopicRelay)?>(nil)

    /// Sets the relay (a broker's fan-out across servers) told of every transition and of every
    /// publish made on this server; nil removes it. Independent of ``setObserver(_:)``.
    func setRelay(_ relay: (any TopicRelay)?) {
        self.relay.withLockedValue { $0 = relay }
    }

    /// Sets the hook called on every 0 → 1 and 1 → 0 transition of a topic's local subscriber
    /// count. It is called in order, with the registry's lock held: keep it short and do not
    /// call back into the topic API from it (hand the event to a task or a queue).
    func setObserver(_ hook: (@Sendable (TopicTransition) -> Void)?) {
        observer.withLockedValue { $0 = hook }
    }

    // MARK: - Subscriptions (on the driver's event loop)

    /// Adds `driver` to `topic`'s group on its loop. Returns the group, to be kept by the driver.
    func subscribe(_ driver: ConnectionDriver, to topic: String) -> TopicGroup {
        let loop = driver.eventLoop
        let group: TopicGroup = topics.withLockedValue { topics in
            var entry = topics[topic] ?? Topic()
            let group: TopicGroup
            if let existing = entry.groups.first(where: { $0.eventLoop === loop }) {
                group = existing.group.value
            } else {
                group = TopicGroup(topic: topic, eventLoop: loop)
                entry.groups.append(GroupReference(id: ObjectIdentifier(group), group: NIOLoopBound(group, eventLoop: loop)))
            }
            entry.count += 1
            topics[topic] = entry
            if entry.count == 1 { notify(.firstSubscriber(topic: topic)) }
            return group
        }
        group.members[ObjectIdentifier(driver)] = driver
        return group
    }

    /// Removes `driver` from `group` (its topic's group on the driver's loop).
    func unsubscribe(_ driver: ConnectionDriver, from group: TopicGroup) {
        group.members[ObjectIdentifier(driver)] = nil
        let empty = group.members.isEmpty
        let topic = group.topic
        topics.withLockedValue { topics in
            guard var entry = topics[topic] else { return }
            entry.count -= 1
            if empty { entry.groups.removeAll { $0.id == ObjectIdentifier(group) } }
            if entry.count == 0 {
                topics[topic] = nil
                notify(.lastSubscriberLeft(topic: topic))
            } else {
                topics[topic] = entry
            }
        }
    }

    private func notify(_ transition: TopicTransition) {
        observer.withLockedValue { $0 }?(transition)
        relay.withLockedValue { $0 }?.topicTransition(transition)
    }

    // MARK: - Publishing (from anywhere)

    /// Publishes to every subscriber of `topic` except `sender`. Returns the number of
    /// subscribers of the topic when it was published, the sender included if it is one
    /// (those on other loops get the message a moment later).
    @discardableResult
    func publish(_ frame: SharedFrame, to topic: String, skipping sender: ObjectIdentifier? = nil) -> Int {
        relay.withLockedValue { $0 }?.published(frame, to: topic)
        return deliver(frame, to: topic, skipping: sender)
    }

    /// Delivers to this server's subscribers of `topic` only, without telling the relay: a
    /// message that came from the broker. Returns the number of local subscribers.
    @discardableResult
    func deliver(_ frame: SharedFrame, to topic: String, skipping sender: ObjectIdentifier? = nil) -> Int {
        let (groups, count) = topics.withLockedValue { topics -> ([GroupReference], Int) in
            guard let entry = topics[topic] else { return ([], 0) }
            return (entry.groups, entry.count)
        }
        metrics.published(toSubscribers: count)
        for reference in groups {
            let group = reference.group
            if group.eventLoop.inEventLoop {
                group.value.deliver(frame, skipping: sender)
            } else {
                group.eventLoop.execute { group.value.deliver(frame, skipping: sender) }
            }
        }
        return count
    }

    /// The number of local subscribers of `topic`.
    func subscriberCount(of topic: String) -> Int {
        topics.withLockedValue { $0[topic]?.count ?? 0 }
    }

    /// Every topic with local subscribers, and their number.
    var counts: [String: Int] {
        topics.withLockedValue { $0.mapValues(\.count) }
    }
}

/// What carries a server's topics to other servers (``BrokerFanout``): told of every 0 → 1 and
/// 1 → 0 transition (with the registry's lock held, in order) and of every publish made on this
/// server (on the publisher's thread, in publish order). Both must return at once.
protocol TopicRelay: Sendable {
    func topicTransition(_ transition: TopicTransition)
    func published(_ frame: SharedFrame, to topic: String)
}

/// The subscribers of one topic on one event loop. Only its loop touches ``members``.
final class TopicGroup {
    let topic: String
    let eventLoop: any EventLoop
    var members: [ObjectIdentifier: ConnectionDriver] = [:]

    init(topic: String, eventLoop: any EventLoop) {
        self.topic = topic
        self.eventLoop = eventLoop
    }

    /// Writes `frame` to every member but the sender. Subscribers that share an encoding
    /// (permessage-deflate without context takeover, same settings) share one encoded frame.
    func deliver(_ frame: SharedFrame, skipping sender: ObjectIdentifier?) {
        var encoded: [AnyHashable: ByteBuffer] = [:]
        for (id, driver) in members where id != sender {
            driver.deliverPublished(frame, encoded: &encoded)
        }
    }
}
