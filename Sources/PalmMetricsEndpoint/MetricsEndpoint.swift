import FlyingFox
import FlyingSocks
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
/// only `GET /metrics` answers, anything else is 404; HTTP parsing is FlyingFox's, each connection
/// bounded by its 5 s timeout and 4 KiB request buffer. The endpoint is unauthenticated: bind it
/// to loopback or a management network (the default configuration binds nothing).
public final class MetricsEndpoint: Sendable {
    /// The port the endpoint is bound to (the configured one, or the kernel's pick for port 0).
    public let port: UInt16
    private let server: HTTPServer

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

    private init(port: UInt16, server: HTTPServer) {
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

        let server: HTTPServer
        do {
            server = listen.host.contains(":")
                ? HTTPServer(address: try sockaddr_in6.inet6(ip6: listen.host, port: listen.port), timeout: 5, logger: .disabled)
                : HTTPServer(address: try sockaddr_in.inet(ip4: listen.host, port: listen.port), timeout: 5, logger: .disabled)
        } catch {
            throw Failure.badAddress(listen.host)
        }
        let ready = DispatchSemaphore(value: 0)
        // How binding went, handed from the server's task to this thread: the first word counts.
        let outcome = LockedValueBox<Result<Socket.Address?, Failure>?>(nil)
        let report = { @Sendable (result: Result<Socket.Address?, Failure>) in outcome.withLockedValue { if $0 == nil { $0 = result } } }
        Task {
            await server.appendRoute("GET /metrics") { _ in
                beforeScrape()
                process.collect()
                return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                    body: Data(registry.emitToBuffer()))
            }
            Task {
                do { try await server.run() } catch {
                    report(.failure(.cannotListen(listen.description, "\(error)")))
                    ready.signal()
                }
            }
            do {
                try await server.waitUntilListening(timeout: 5)
                report(.success(await server.listeningAddress))
            } catch {
                report(.failure(.cannotListen(listen.description, "not listening after 5 s: \(error)")))
            }
            ready.signal()
        }
        ready.wait()
        guard let result = outcome.current else { throw Failure.cannotListen(listen.description, "no answer from the server task") }
        let bound = try result.get()
        let port: UInt16
        switch bound {
        case let .ip4(_, p)?, let .ip6(_, p)?: port = p
        default: port = listen.port
        }
        logger.info("metrics at http://\(Endpoint(host: listen.host, port: port))/metrics")
        return MetricsEndpoint(port: port, server: server)
    }

    /// Stops listening (the daemons call it on shutdown).
    public func stop() {
        let done = DispatchSemaphore(value: 0)
        Task { [server] in
            await server.stop(timeout: 1)
            done.signal()
        }
        _ = done.wait(timeout: .now() + 2)
    }
}
