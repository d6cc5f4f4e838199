import Foundation
import PalmSupport

/// The watchdog that proves the daemon works, not merely that a timer runs.
///
/// Each of the daemon's essential loops (accept loop, scheduler, heartbeat loop) registers and
/// calls ``beat(_:)`` every time round. A helper thread sends `WATCHDOG=1` at half the configured
/// `WatchdogSec=` only while *every* registered loop has beaten within the watchdog interval; if
/// one hangs (a deadlock, a stuck database, a blocked accept loop) the pings stop and systemd
/// restarts the service. Loops must therefore wake at least every ``maxWait`` seconds.
public final class Liveness: Sendable {
    public let interval: Double?
    private let notifier: ServiceNotifier
    /// Each loop's last beat (monotonic seconds).
    private let beats = LockedValueBox([String: Double]())
    private let started = LockedValueBox(false)

    public init(notifier: ServiceNotifier = .shared, interval: Double? = nil) {
        self.notifier = notifier
        self.interval = interval ?? notifier.watchdogInterval
    }

    /// The longest a registered loop may sleep between beats (a quarter of the interval, or
    /// `fallback` when there is no watchdog).
    public func maxWait(fallback: Double) -> Double {
        guard let interval else { return fallback }
        return min(fallback, interval / 4)
    }

    public func register(_ loop: String) { beat(loop) }

    public func beat(_ loop: String, at now: Double = MonotonicClock.now()) {
        beats.withLockedValue { $0[loop] = now }
    }

    /// Loops that have not beaten within the interval.
    public func stalled(now: Double = MonotonicClock.now()) -> [String] {
        guard let interval else { return [] }
        return beats.current.filter { now - $0.value > interval }.map(\.key).sorted()
    }

    /// Starts pinging (no-op without a watchdog). `onStall` is told once per stall.
    public func start(onStall: @escaping @Sendable ([String]) -> Void = { _ in }) {
        guard let interval else { return }
        guard !started.exchange(true) else { return }
        Thread { [self] in
            var reported = false
            while true {
                let stuck = stalled()
                if stuck.isEmpty {
                    notifier.watchdog()
                    reported = false
                } else if !reported {
                    onStall(stuck)
                    reported = true
                }
                Thread.sleep(forTimeInterval: interval / 2)
            }
        }.start()
    }
}
