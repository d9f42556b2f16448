import Duplex
import Metrics
import NIOCore
import Prometheus

/// `duplex serve --metrics`: swift-prometheus as the process's swift-metrics backend, and its
/// registry in the Prometheus text format at `GET /metrics`. The library itself only ever
/// emits through swift-metrics; this is the one place that picks a backend.
enum MetricsRoute {
    /// Bootstraps swift-metrics with a Prometheus registry (once per process) and returns it.
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // An upgrade on a LAN takes well under a millisecond; the default buckets start at 5 ms.
        factory.durationHistogramBuckets["duplex_upgrade_duration_seconds"] = [
            .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
            .milliseconds(250), .seconds(1),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// Mounts `GET /metrics`.
    static func register(on router: inout WebSocketRouter, registry: PrometheusCollectorRegistry) {
        router.get("/metrics") { _ in
            RouteResponse(status: .ok, headerFields: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                          body: ByteBuffer(bytes: registry.emitToBuffer()))
        }
    }
}
