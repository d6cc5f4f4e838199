import CXenShims
import Foundation
import PalmHypervisor
import PalmSupport
#if canImport(Glibc)
import Glibc
#endif

/// Keeps the life of the domains palm-dest brought to this host, as xl's per-domain process keeps
/// the life of the domains xl created: when one stops, its stored configuration's action for the
/// reason is carried out (`on_reboot = "restart"` starts it again under the same name and UUID,
/// `on_poweroff = "destroy"` removes it, `preserve` leaves it for an operator, `coredump-*` dump
/// it first to /var/lib/xen/dump/NAME), and every decision is reported.
///
/// Which domains: those marked "kept by palm" (libxl userdata `palm`, which libxl removes with the
/// domain) — marked when a migration's domain runs here — so a restarted palm-dest finds them
/// again (``reattach()``) and acts on a domain that stopped while it was down (libxl reports the
/// stop as soon as the watch is set). Domains xl created stay xl's.
///
/// Guarantees: one thread and one libxl context for all kept domains (no thread per VM); a
/// suspended domain (being migrated or saved, by palm-source or xl) is never acted on, and a
/// domain that is destroyed or migrated away is forgotten. A restart waits (bounded by the
/// toolstack timeout) until the old domain has released its memory before building the new one.
final class XenLifecycleKeeper: Sendable {
    private let context: LibxlContext
    private let xc: XenControl
    private let timeout: Double
    private let report: @Sendable (LifecycleEvent) -> Void
    private let watches = LockedValueBox([UInt32: DeathWatch]())

    /// A libxl death watch (owned by the keeper's context).
    private struct DeathWatch: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer?
        let name: String
    }

    init(xc: XenControl, timeout: Double, report: @escaping @Sendable (LifecycleEvent) -> Void) throws {
        context = try LibxlContext()
        self.xc = xc
        self.timeout = timeout
        self.report = report
        let thread = Thread { [self] in run() }
        thread.name = "palm-lifecycle"
        thread.start()
    }

    /// Marks the domain as kept by palm and watches it; idempotent.
    func keep(domid: UInt32, name: String) throws {
        try context.check(palm_libxl_set_kept(context.handle, domid, "kept by palm-dest"), "libxl_userdata_store(\(domid), palm)")
        try watch(domid: domid, name: name)
    }

    /// Watches every domain marked as kept (after a restart of palm-dest); returns their names.
    func reattach() throws -> [String] {
        var list: UnsafeMutablePointer<UInt32>?
        var count: Int32 = 0
        try context.check(palm_libxl_kept_domains(context.handle, &list, &count), "libxl_list_domain")
        defer { palm_libxl_free(list) }
        var names: [String] = []
        for i in 0..<Int(count) {
            guard let domid = list?[i] else { continue }
            let name = xc.name(of: domid) ?? "domain \(domid)"
            try watch(domid: domid, name: name)
            names.append(name)
        }
        return names
    }

    private func watch(domid: UInt32, name: String) throws {
        // Claimed under the lock first, so two threads handing over one domain set one watch.
        let claimed = watches.withLockedValue { w -> Bool in
            guard w[domid] == nil else { return false }
            w[domid] = DeathWatch(pointer: nil, name: name)
            return true
        }
        guard claimed else { return }
        var pointer: UnsafeMutableRawPointer?
        let rc = palm_libxl_watch_death(context.handle, domid, &pointer)
        watches.withLockedValue { w in
            if rc == 0 { w[domid] = DeathWatch(pointer: pointer, name: name) } else { w.removeValue(forKey: domid) }
        }
        try context.check(rc, "libxl_evenable_domain_death(\(domid))")
    }

    private func forget(_ domid: UInt32) -> String? {
        guard let w = watches.withLockedValue({ $0.removeValue(forKey: domid) }) else { return nil }
        palm_libxl_unwatch_death(context.handle, w.pointer)
        return w.name
    }

    /// The event loop: libxl's events for the watched domains, one at a time (a watch added by
    /// another thread is polled within a second).
    private func run() {
        var failures = 0
        while true {
            var kind: Int32 = 0, domid: UInt32 = 0, reason: Int32 = 0
            let rc = palm_libxl_next_event(context.handle, 1000, &kind, &domid, &reason)
            if rc == PALM_LIBXL_NO_EVENT { continue }
            guard rc == 0 else {
                failures += 1
                report(LifecycleEvent(vm: "-", outcome: .failed,
                                      detail: "waiting for domain events failed (libxl error \(rc)): \(context.logTail())"))
                if failures >= 3 {
                    report(LifecycleEvent(vm: "-", outcome: .failed,
                                          detail: "stopped keeping the migrated domains' life after 3 failures; restart palm-dest to resume it"))
                    return
                }
                continue
            }
            failures = 0
            switch Int(kind) {
            case Int(PALM_LIBXL_EVENT_SHUTDOWN):
                stopped(domid, XenShutdownReason(libxlName: String(cString: palm_libxl_reason_name(reason))))
            case Int(PALM_LIBXL_EVENT_DEATH):
                if let name = forget(domid) {
                    report(LifecycleEvent(vm: name, outcome: .released,
                                          detail: "\(name) (domain \(domid)) is gone (destroyed, or migrated away): no longer kept here"))
                }
            default:
                break
            }
        }
    }

    private func stopped(_ domid: UInt32, _ reason: XenShutdownReason) {
        guard let name = watches.withLockedValue({ $0[domid]?.name }) else { return }
        let policy: XenShutdownPolicy
        do {
            policy = try shutdownPolicy(domid)
        } catch {
            // Without its configuration nothing can be restarted: leave the domain for an operator.
            _ = forget(domid)
            report(LifecycleEvent(vm: name, outcome: .failed,
                                  detail: "\(name) (domain \(domid)) stopped (\(reason.rawValue)) but its configuration cannot be read (\(error)); left as it is"))
            return
        }
        let plan = policy.plan(for: reason)
        let said = "\(name) (domain \(domid)) stopped (\(reason.rawValue)): \(plan.because)"
        var dumped = ""
        if plan.coreDump { dumped = coreDump(domid, name) }
        do {
            switch plan.step {
            case .watchOn:
                // A watch reports one shutdown: set a new one before dropping the old (as xl does).
                let old = watches.withLockedValue { $0.removeValue(forKey: domid) }
                defer { palm_libxl_unwatch_death(context.handle, old?.pointer) }
                try watch(domid: domid, name: name)
            case .destroy:
                _ = forget(domid)
                try context.check(palm_libxl_destroy(context.handle, domid), "libxl_domain_destroy(\(domid))")
                report(LifecycleEvent(vm: name, outcome: .destroyed, detail: "\(said): destroyed\(dumped)"))
            case .leave:
                _ = forget(domid)
                report(LifecycleEvent(vm: name, outcome: .left,
                                      detail: "\(said): left as it is\(dumped) (inspect with xl, remove with xl destroy \(name))"))
            case .restart, .preserveAndRestart:
                let config = try XenToolstack.configJSON(context: context, domid: domid)
                _ = forget(domid)
                var kept = ""
                if plan.step == .preserveAndRestart {
                    let suffix = "-" + Self.stamp()
                    try context.check(palm_libxl_preserve(context.handle, domid, suffix), "libxl_domain_preserve(\(domid))")
                    kept = ", the stopped domain kept as \(name)\(suffix)"
                } else {
                    try context.check(palm_libxl_destroy(context.handle, domid), "libxl_domain_destroy(\(domid))")
                    try awaitGone(domid)
                }
                let fresh = try create(config)
                try keep(domid: fresh, name: name)
                report(LifecycleEvent(vm: name, outcome: .restarted, detail: "\(said): started again as domain \(fresh)\(kept)\(dumped)"))
            }
        } catch {
            report(LifecycleEvent(vm: name, outcome: .failed, detail: "\(said), and carrying it out failed: \(error)"))
        }
    }

    private func shutdownPolicy(_ domid: UInt32) throws -> XenShutdownPolicy {
        var a, b, c, d, e: UnsafePointer<CChar>?
        try context.check(palm_libxl_shutdown_actions(context.handle, domid, &a, &b, &c, &d, &e),
                          "libxl_retrieve_domain_configuration(\(domid))")
        let actions = try [a, b, c, d, e].map { p -> XenShutdownAction in
            let text = p.map { String(cString: $0) } ?? ""
            guard let a = XenShutdownAction(rawValue: text) else {
                throw HypervisorError.guestFailed("unknown action on shutdown \"\(text)\" in domain \(domid)'s configuration")
            }
            return a
        }
        return XenShutdownPolicy(onPoweroff: actions[0], onReboot: actions[1], onWatchdog: actions[2], onCrash: actions[3],
                                 onSoftReset: actions[4])
    }

    /// Where xl dumps cores (XEN_DUMP_DIR); a failed dump is reported, not fatal (as in xl).
    private func coreDump(_ domid: UInt32, _ name: String) -> String {
        let directory = "/var/lib/xen/dump"
        let path = "\(directory)/\(name)"
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            return ", no core dump (\(directory): \(error))"
        }
        let rc = palm_libxl_core_dump(context.handle, domid, path)
        return rc == 0 ? ", core dumped to \(path)" : ", core dump to \(path) failed (libxl error \(rc))"
    }

    /// Waits until Xen has released the destroyed domain (its memory is what the restart needs).
    private func awaitGone(_ domid: UInt32) throws {
        let deadline = MonotonicClock.now() + timeout
        while try xc.domain(domid) != nil {
            guard MonotonicClock.now() < deadline else {
                throw HypervisorError.guestFailed("domain \(domid) was still dying \(Int(timeout)) s after it was destroyed")
            }
            usleep(50_000)
        }
    }

    private func create(_ config: [UInt8]) throws -> UInt32 {
        var domid: UInt32 = 0
        let json = config + [0]
        let rc = json.withUnsafeBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { palm_libxl_create(context.handle, $0, &domid) }
        }
        if rc == PALM_LIBXL_BAD_CONFIG { throw HypervisorError.corruptImage("libxl cannot parse the stored configuration") }
        try context.check(rc, "libxl_domain_create_new")
        return domid
    }

    /// The suffix xl gives a preserved domain: -YYYYMMDDTHHMMZ (UTC).
    static func stamp(_ date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmm'Z'"
        return f.string(from: date)
    }
}
