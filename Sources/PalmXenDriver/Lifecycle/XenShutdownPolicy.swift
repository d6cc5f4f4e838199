/// Why a domain stopped running, as Xen reports it (libxl's `libxl_shutdown_reason` names).
enum XenShutdownReason: String, Sendable, CaseIterable {
    case poweroff, reboot, suspend, crash, watchdog
    case softReset = "soft_reset"
    case unknown

    init(libxlName: String) { self = XenShutdownReason(rawValue: libxlName) ?? .unknown }
}

/// What a domain's configuration says to do when it stops (`on_poweroff`, `on_reboot`, … in an xl
/// configuration file; libxl's `libxl_action_on_shutdown` names).
enum XenShutdownAction: String, Sendable, CaseIterable {
    case destroy, restart, preserve
    case renameRestart = "rename_restart"
    case coredumpDestroy = "coredump_destroy"
    case coredumpRestart = "coredump_restart"
    case softReset = "soft_reset"
}

/// The actions a domain's stored configuration names, and the plan they make for each way it
/// stops — the decisions xl's per-domain process takes (`handle_domain_death` in
/// tools/xl/xl_vmcontrol.c), so a VM palm moved behaves after the move as it did before.
///
/// Guarantees: a suspend (a migration or save of the domain in progress) never acts — the
/// domain is watched on; an unknown reason destroys, as xl does; a soft reset, which palm does
/// not carry out, leaves the domain as it is and says so instead of guessing.
struct XenShutdownPolicy: Equatable, Sendable {
    var onPoweroff: XenShutdownAction
    var onReboot: XenShutdownAction
    var onWatchdog: XenShutdownAction
    var onCrash: XenShutdownAction
    var onSoftReset: XenShutdownAction

    /// What to do, in order.
    struct Plan: Equatable, Sendable {
        enum Step: Equatable, Sendable {
            /// The domain was suspended, not stopped: watch it on.
            case watchOn
            /// Destroy the domain (its devices, xenstore entries and memory).
            case destroy
            /// Destroy it and start it again from the same configuration (same name and UUID).
            case restart
            /// Keep the stopped domain under another name and start the VM again.
            case preserveAndRestart
            /// Leave the stopped domain for an operator to inspect, and stop keeping it.
            case leave
        }
        var coreDump = false
        var step: Step
        /// The configuration setting that decided it (`on_reboot = restart`), for the log.
        var because: String
    }

    func plan(for reason: XenShutdownReason) -> Plan {
        let (key, action): (String, XenShutdownAction)
        switch reason {
        case .suspend: return Plan(step: .watchOn, because: "suspended (a migration or save), not stopped")
        case .poweroff: (key, action) = ("on_poweroff", onPoweroff)
        case .reboot: (key, action) = ("on_reboot", onReboot)
        case .watchdog: (key, action) = ("on_watchdog", onWatchdog)
        case .crash: (key, action) = ("on_crash", onCrash)
        case .softReset: (key, action) = ("on_soft_reset", onSoftReset)
        case .unknown: return Plan(step: .destroy, because: "an unknown shutdown reason (destroyed, as xl does)")
        }
        let because = "\(key) = \(action.rawValue)"
        switch action {
        case .destroy: return Plan(step: .destroy, because: because)
        case .restart: return Plan(step: .restart, because: because)
        case .preserve: return Plan(step: .leave, because: because)
        case .renameRestart: return Plan(step: .preserveAndRestart, because: because)
        case .coredumpDestroy: return Plan(coreDump: true, step: .destroy, because: because)
        case .coredumpRestart: return Plan(coreDump: true, step: .restart, because: because)
        case .softReset: return Plan(step: .leave, because: because + " (not carried out by palm: the domain is left as it is)")
        }
    }
}
