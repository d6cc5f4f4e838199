#if canImport(Glibc)
import Glibc
#endif

/// The CPU priority of the calling thread: how the page path yields to the rest of the host.
///
/// Bulk page copying is CPU-bound (hashing, encryption, compression, copying into the guest); on a
/// busy host it would otherwise compete on equal terms with work the hand-off waits for — on Xen,
/// the toolstack's hotplug scripts bringing the destination's devices up, xenstored, the backends'
/// user-space helpers. A page thread at a higher nice value takes the CPU that is left over, so that
/// work finishes first, and costs nothing on an idle host.
///
/// Guarantees: only the calling thread changes (Linux applies `setpriority(PRIO_PROCESS, 0, …)` to
/// the calling thread alone); the nice value only ever goes up — lowering it needs CAP_SYS_NICE,
/// which palm's units do not grant — and a refusal leaves the thread as it was.
public enum ThreadPriority {
    /// Valid nice values for a page thread (0: as the rest of the process).
    public static let niceRange: ClosedRange<Int> = 0...19

    /// Raises the calling thread's nice value to `nice` when it is lower; false when refused.
    @discardableResult
    public static func yield(nice: Int) -> Bool {
        guard niceRange.contains(nice) else { return false }
        errno = 0
        let current = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        guard errno == 0 else { return false }
        guard current < nice else { return true }
        return setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, Int32(nice)) == 0
    }

    /// The calling thread's nice value.
    public static var currentNice: Int {
        Int(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0))
    }
}
