import Foundation
import Logging
import Metrics
import PalmConfig
import PalmMetrics
import PalmSupport
import Prometheus

/// `GET /metrics` in Prometheus' text format, on the address `[metrics] listen` names: the one
/// place a daemon's metrics leave the process. Off unless configured.
///
/// Guarantees: swift-metrics is bootstrapped with a Prometheus registry exactly once per process
/// (a second ``start(listen:logger:beforeScrape:)`` throws ``Failure/alreadyStarted``); the listen
/// address is bound before `start` returns (a taken port is a named error, not a silent retry);
/// only `GET /metrics` answers, anything else is 404; HTTP is ``ScrapeServer``'s: at most 4
/// requests at once, each in a 4 KiB buffer and ended after 5 s. The endpoint is unauthenticated: bind it
/// to loopback or a management network (the default configuration binds nothing).
public final class MetricsEndpoint: Sendable {
    /// The port the endpoint is bound to (the configured one, or the kernel's pick for port 0).
    public let port: UInt16
    private let server: ScrapeServer

    public enum Failure: Error, CustomStringConvertible {
        case alreadyStarted
        case badAddress(String)
        case cannotListen(String, String)
        public var description: String {
            switch self {
            case .alreadyStarted: return "the metrics endpoint is already running in this process"
            case let .badAddress(a): return "metrics listen address '\(a)' is not an IP address"
            case let .cannotListen(a, why): return "cannot serve metrics on \(a): \(why)"
            }
        }
    }

    private static let started = LockedValueBox(false)

    private init(port: UInt16, server: ScrapeServer) {
        self.port = port
        self.server = server
    }

    /// Bootstraps metrics, binds `listen` and serves until the process ends. `beforeScrape` runs
    /// before each exposition (the coordinator sets its inventory gauges from the database there).
    public static func start(listen: Endpoint, logger: Logger, beforeScrape: @escaping @Sendable () -> Void = {}) throws -> MetricsEndpoint {
        guard !started.exchange(true) else { throw Failure.alreadyStarted }
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        for name in MetricName.allCases { if let b = name.buckets { factory.valueHistogramBuckets[name.rawValue] = b } }
        MetricsSystem.bootstrap(factory)
        let process = ProcessMetrics(registry: registry)

        let server: ScrapeServer
        do {
            server = try ScrapeServer(host: listen.host, port: listen.port, path: "/metrics") {
                beforeScrape()
                process.collect()
                var r = ScrapeServer.Response(status: 200, reason: "OK", body: [])
                r.contentType = "text/plain; version=0.0.4; charset=utf-8"
                r.body = registry.emitToBuffer()
                return r
            }
        } catch ScrapeServer.Failure.badAddress {
            throw Failure.badAddress(listen.host)
        } catch let ScrapeServer.Failure.cannotListen(_, why) {
            throw Failure.cannotListen(listen.description, why)
        }
        let port = server.port
        logger.info("metrics at http://\(Endpoint(host: listen.host, port: port))/metrics")
        return MetricsEndpoint(port: port, server: server)
    }

    /// Stops listening (the daemons call it on shutdown).
    public func stop() { server.stop() }
}
