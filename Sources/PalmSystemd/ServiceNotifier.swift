import CSystemd
import CSystemdShims
import Foundation
import PalmSupport

/// The daemon's side of the systemd notification protocol (`sd_notify`, `Type=notify`).
///
/// Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op, so the daemons run the same
/// code on a terminal. Guarantees: `READY=1` is sent only by ``ready(status:)``, which the daemons
/// call after their socket is bound and their state loaded; `STOPPING=1` before any shutdown work.
public final class ServiceNotifier: Sendable {
    public static let shared = ServiceNotifier()

    private let lastStatus = LockedValueBox("")

    public init() {}

    /// Whether a service manager listens.
    public var isActive: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    @discardableResult
    public func send(_ state: String) -> Bool {
        guard isActive else { return false }
        return palm_notify(0, state) > 0
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(ServiceNotifier.clean(status))\nMAINPID=\(getpid())") }

    /// `STATUS=`; repeated identical texts are not resent.
    public func status(_ text: String) {
        let t = ServiceNotifier.clean(text)
        if lastStatus.exchange(t) != t { send("STATUS=\(t)") }
    }

    public func reloading() { send("RELOADING=1\nSTATUS=reloading configuration") }
    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(ServiceNotifier.clean(status))") }
    public func watchdog() { send("WATCHDOG=1") }

    /// The watchdog interval systemd configured (`WatchdogSec=`) for this process, if any.
    public var watchdogInterval: Double? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return Double(usec) / 1_000_000
    }

    /// One line, no control characters: a status is a single `KEY=value` line.
    static func clean(_ s: String) -> String {
        String(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
    }
}
