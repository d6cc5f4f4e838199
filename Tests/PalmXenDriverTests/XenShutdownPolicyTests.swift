import Foundation
import Testing
@testable import PalmXenDriver

/// The decisions palm-dest takes for a migrated domain that stops — the ones xl's per-domain
/// process takes (tools/xl/xl_vmcontrol.c, handle_domain_death), read from the domain's own
/// configuration. The rig (integration/xenrig) checks them carried out on real Xen.
@Suite("A migrated domain's life: what its configuration says to do when it stops")
struct XenShutdownPolicyTests {
    /// on_poweroff = destroy, on_reboot = restart, on_watchdog = coredump_restart, on_crash = preserve.
    let policy = XenShutdownPolicy(onPoweroff: .destroy, onReboot: .restart, onWatchdog: .coredumpRestart,
                                   onCrash: .preserve, onSoftReset: .softReset)

    @Test("each reason takes its own setting: reboot restarts, power-off destroys, crash preserved is left, watchdog dumps then restarts")
    func reasonsTakeTheirSetting() {
        #expect(policy.plan(for: .reboot) == .init(step: .restart, because: "on_reboot = restart"))
        #expect(policy.plan(for: .poweroff) == .init(step: .destroy, because: "on_poweroff = destroy"))
        #expect(policy.plan(for: .crash) == .init(step: .leave, because: "on_crash = preserve"))
        #expect(policy.plan(for: .watchdog) == .init(coreDump: true, step: .restart, because: "on_watchdog = coredump_restart"))
    }

    @Test("a suspended domain (a migration or save under way) is never acted on, whatever the settings")
    func suspendIsWatchedOn() {
        let harsh = XenShutdownPolicy(onPoweroff: .destroy, onReboot: .destroy, onWatchdog: .destroy, onCrash: .destroy, onSoftReset: .destroy)
        #expect(harsh.plan(for: .suspend).step == .watchOn)
        #expect(policy.plan(for: .suspend).step == .watchOn)
    }

    @Test("rename_restart keeps the stopped domain and starts the VM again; coredump_destroy dumps, then destroys")
    func renameAndCoredump() {
        let p = XenShutdownPolicy(onPoweroff: .coredumpDestroy, onReboot: .renameRestart, onWatchdog: .destroy, onCrash: .destroy, onSoftReset: .destroy)
        #expect(p.plan(for: .reboot).step == .preserveAndRestart)
        #expect(p.plan(for: .poweroff) == .init(coreDump: true, step: .destroy, because: "on_poweroff = coredump_destroy"))
    }

    @Test("a soft reset palm does not carry out is left as it is and said so; an unknown reason destroys, as xl does")
    func softResetAndUnknown() {
        let soft = policy.plan(for: .softReset)
        #expect(soft.step == .leave && soft.because.contains("not carried out by palm"))
        #expect(policy.plan(for: .unknown).step == .destroy)
        #expect(XenShutdownReason(libxlName: "no such reason") == .unknown)
    }

    @Test("libxl's names map onto the reasons and actions, every one of them")
    func libxlNames() {
        for r in ["poweroff", "reboot", "suspend", "crash", "watchdog", "soft_reset"] {
            #expect(XenShutdownReason(libxlName: r).rawValue == r)
        }
        let actions = ["destroy", "restart", "rename_restart", "preserve", "coredump_destroy", "coredump_restart", "soft_reset"]
        #expect(Set(actions.compactMap(XenShutdownAction.init(rawValue:))) == Set(XenShutdownAction.allCases))
    }

    @Test("a preserved domain's suffix is xl's: -YYYYMMDDTHHMMZ in UTC")
    func preserveSuffix() {
        #expect(XenLifecycleKeeper.stamp(Date(timeIntervalSince1970: 1_796_640_300)) == "20261207T1045Z")
    }
}
