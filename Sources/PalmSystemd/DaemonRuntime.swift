import Foundation
import Logging
import PalmWire
import PalmSupport

/// What every palm daemon does around its work: READY=1 once serving, WATCHDOG=1 while its loops
/// beat, STOPPING=1 and an orderly stop on SIGTERM, RELOADING=1 … READY=1 on SIGHUP.
public final class DaemonRuntime: @unchecked Sendable {
    public let notifier: ServiceNotifier
    public let liveness: Liveness
    public let logger: Logger

    public init(logger: Logger, notifier: ServiceNotifier = .shared) {
        self.logger = logger
        self.notifier = notifier
        liveness = Liveness(notifier: notifier)
    }

    /// Announces readiness (the caller has bound its socket and loaded its state), then runs
    /// `serve` until it returns. `stop` is called on SIGTERM and must make `serve` return once
    /// in-flight work is finished or safely aborted. `reload` re-reads the configuration and
    /// returns the new status line; if it throws, the daemon keeps its previous configuration.
    public func run(status: String, serve: () -> Void, stop: @escaping @Sendable () -> Void,
                    reload: @escaping @Sendable () throws -> String) {
        let logger = self.logger, notifier = self.notifier
        let signals = ServiceSignals(onTerminate: {
            logger.notice("stopping on request", metadata: ["event": "\(PalmEvent.daemonStopping.rawValue)"])
            notifier.stopping(status: "stopping: finishing or safely aborting what is in flight")
            stop()
        }, onReload: {
            notifier.reloading()
            do {
                let status = try reload()
                logger.notice("configuration reloaded", metadata: ["event": "\(PalmEvent.daemonReloaded.rawValue)"])
                notifier.ready(status: status)
            } catch {
                logger.error("reload failed, keeping the previous configuration: \(error)")
                notifier.ready(status: "reload failed (\(error)); running with the previous configuration")
            }
        })
        // READY=1 first: systemd must never see a watchdog ping from a daemon not yet ready.
        notifier.ready(status: status)
        liveness.start { stalled in
            logger.critical("no progress in \(stalled.joined(separator: ", ")); watchdog pings withheld")
        }
        logger.notice("\(status)", metadata: ["event": "\(PalmEvent.daemonReady.rawValue)"])
        serve()
        withExtendedLifetime(signals) {}
    }
}
