import Dispatch
import Foundation

/// SIGTERM and SIGHUP for a daemon, delivered on a dispatch queue instead of in a signal handler.
///
/// SIGTERM (systemctl stop): ``onTerminate`` runs once; a second SIGTERM while it runs is ignored
/// (systemd escalates to SIGKILL after `TimeoutStopSec=`). SIGHUP (systemctl reload): ``onReload``.
public final class ServiceSignals: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "palm.signals")
    private var terminating = false

    public init(onTerminate: @escaping @Sendable () -> Void, onReload: @escaping @Sendable () -> Void) {
        for (sig, action) in [(SIGTERM, onTerminate), (SIGINT, onTerminate), (SIGHUP, onReload)] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [unowned self] in
                if sig == SIGHUP { action(); return }
                guard !terminating else { return }
                terminating = true
                action()
            }
            source.resume()
            sources.append(source)
        }
    }
}
