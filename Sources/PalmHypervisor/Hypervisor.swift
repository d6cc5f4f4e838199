import Foundation
import PalmWire

/// What palm needs from a hypervisor. The `xen` driver implements it with libxenctrl and
/// libxenforeignmemory; the `sim` driver with guest processes over shared memory. The migration
/// engine sees only this protocol, so both drivers run the same protocol code path.
public protocol Hypervisor: AnyObject, Sendable {
    /// `xen` or `sim`.
    var name: String { get }
    /// The hypervisor's version (reported in attestation).
    var version: String { get }
    /// VMs on this host.
    func listVMs() throws -> [VMInfo]
    /// Bytes of guest memory this host can still accept.
    func freeMemoryBytes() throws -> UInt64
    /// Opens a running VM as the source of a migration.
    func openSource(vm: String) throws -> SourceDomain
    /// Creates an empty, paused VM ready to receive pages. Refuses before allocating anything
    /// when the host lacks memory for it.
    func createIncoming(config: VMConfig) throws -> DestinationDomain
    /// Names of VMs left half-received by an agent that stopped (crash recovery).
    func incomingVMs() -> [String]
    /// Resumes a left-over incoming VM whose migration was committed (crash recovery).
    func completeIncoming(vm: String) throws
    /// Throws away a left-over incoming VM whose migration did not commit (crash recovery).
    /// Throws when the VM may still be there, so the caller says so instead of reporting it gone.
    func discardIncoming(vm: String) throws
    /// Pages per second the VM is expected to dirty, if the driver can tell without log-dirty
    /// (the agents otherwise report what the VM's last migration measured).
    func dirtyRateEstimate(vm: String) -> Double?
    /// This host's CPU load, 0…1, as the coordinator's scheduler should weigh it. The default is
    /// the 1-minute load average over the CPUs (what a dom0 sees of its host); a driver whose
    /// hosts share one machine (sim) reports 0, since that load is no host's own.
    func hostCPULoad() -> Double
    /// Keeps the life of the VMs this agent brought here after their move, as the VM's own
    /// configuration says (started again on reboot, removed on power-off, …, the way the
    /// hypervisor's toolstack would have), reporting each decision; watches again the VMs it kept
    /// before a restart, and returns their names. The default keeps nothing (a driver whose VMs
    /// cannot stop on their own, as the sim's).
    func keepLifecycle(report: @escaping @Sendable (LifecycleEvent) -> Void) throws -> [String]
}

/// What the hypervisor did on its own to a VM that stopped after its move (``Hypervisor/keepLifecycle(report:)``).
public struct LifecycleEvent: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        /// Started again (on_reboot = restart, …).
        case restarted
        /// Removed (on_poweroff = destroy, …).
        case destroyed
        /// Left stopped for an operator (preserve).
        case left
        /// No longer here (destroyed by someone else, or migrated away): not kept any more.
        case released
        /// The action could not be carried out: the VM may be down.
        case failed
    }
    public var vm: String
    public var outcome: Outcome
    /// One sentence: what stopped, why, what the configuration said, what was done.
    public var detail: String

    public init(vm: String, outcome: Outcome, detail: String) {
        self.vm = vm
        self.outcome = outcome
        self.detail = detail
    }
}

extension Hypervisor {
    public func dirtyRateEstimate(vm: String) -> Double? { nil }

    public func keepLifecycle(report: @escaping @Sendable (LifecycleEvent) -> Void) throws -> [String] { [] }

    public func hostCPULoad() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8),
              let first = text.split(separator: " ").first, let load = Double(first) else { return 0 }
        return min(1, load / Double(max(ProcessInfo.processInfo.activeProcessorCount, 1)))
    }
}

extension SourceDomain {
    public var platform: [UInt8] { [] }
    public func prepareForPause() throws {}
}

extension DestinationDomain {
    public func settle() throws {}
}

/// A batch of received pages as the engine hands it to a destination driver: `pfns[i]` is
/// all zeroes when `zero[i]`, otherwise its content is the next page-sized slice of `data`
/// (data pages are packed in table order).
public struct IncomingPages {
    public let pfns: UnsafeBufferPointer<UInt64>
    public let zero: UnsafeBufferPointer<Bool>
    public let data: UnsafeRawBufferPointer
    public let pageSize: Int

    public init(pfns: UnsafeBufferPointer<UInt64>, zero: UnsafeBufferPointer<Bool>, data: UnsafeRawBufferPointer, pageSize: Int) {
        precondition(pfns.count == zero.count, "one kind per page")
        self.pfns = pfns
        self.zero = zero
        self.data = data
        self.pageSize = pageSize
    }

    /// Calls `body(pfn, content)` for every page in order; `content` is nil for a zero page.
    public func forEach(_ body: (UInt64, UnsafeRawBufferPointer?) throws -> Void) rethrows {
        var next = 0
        for i in 0..<pfns.count {
            if zero[i] {
                try body(pfns[i], nil)
            } else {
                try body(pfns[i], UnsafeRawBufferPointer(rebasing: data[(next * pageSize)..<((next + 1) * pageSize)]))
                next += 1
            }
        }
    }
}

/// One VM as the hypervisor reports it.
public struct VMInfo: Equatable, Sendable, Codable {
    public var name: String
    public var pageSize: Int
    public var pageCount: UInt64
    public var vcpus: UInt32
    public var state: VMRunState

    public init(name: String, pageSize: Int, pageCount: UInt64, vcpus: UInt32, state: VMRunState) {
        self.name = name
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.vcpus = vcpus
        self.state = state
    }

    public var memoryBytes: UInt64 { pageCount * UInt64(pageSize) }
}

public enum VMRunState: String, Sendable, Codable {
    case running, paused, incoming, stopped
}

/// The outbound side of one VM during a migration.
///
/// Pages are copied out in batches into buffers the engine owns; drivers map guest memory only
/// for the duration of a copy (or not at all), so an agent never holds a copy of (or a mapping
/// over) all of guest RAM.
public protocol SourceDomain: AnyObject {
    var info: VMInfo { get }
    /// Driver-specific description the destination's driver needs to build the VM (sent in
    /// CONFIG; empty for the sim driver, the page layout and libxl configuration for Xen).
    var platform: [UInt8] { get }
    /// Seconds the driver expects ``pause()`` to take — part of the downtime the engine predicts
    /// (sim: a signal; Xen: the guest's own suspend).
    var pauseEstimate: Double { get }
    /// Called once pre-copy has ended, just before `pause`, while the VM still runs: work the
    /// hand-off needs that must not count as downtime (Xen: freeing the VM's name for a
    /// destination on this same host). `resume` undoes it.
    func prepareForPause() throws
    func pause() throws
    /// Runs the VM again after `pause` or `prepareForPause`; harmless when it runs already.
    func resume() throws
    /// Starts dirty tracking with an empty log.
    func enableDirtyLog() throws
    /// Moves the pages dirtied since the last call into `bitmap` (read-and-reset) and returns
    /// how many there are.
    func collectDirty(into bitmap: inout DirtyBitmap) throws -> Int
    /// How many pages were dirtied since the last ``collectDirty(into:)``, without resetting the
    /// log — the engine watches it while a round runs. `nil` when the driver cannot tell.
    func peekDirtyCount() throws -> Int?
    func disableDirtyLog() throws
    /// Copies page `pfns[i]` into the i-th page-sized slot of `buffer`. Called from several
    /// threads at once (one per page stream), each with its own buffer; never blocks on another
    /// copy. A page the guest writes meanwhile may be copied torn: its dirty bit sends it again.
    func copyPages(_ pfns: UnsafeBufferPointer<UInt64>, into buffer: UnsafeMutableRawPointer) throws
    /// The vCPU/platform state, captured while paused.
    func captureState() throws -> [UInt8]
    /// Slows the running guest to (100 − percent) % of its CPU time (auto-converge); 0 stops throttling.
    func setThrottle(percent: Int) throws
    /// Destroys the VM on this host (after the destination has resumed it).
    func destroy() throws
}

/// The inbound side: an incoming VM that exists paused until `resume`.
public protocol DestinationDomain: AnyObject {
    var info: VMInfo { get }
    /// Seconds the driver expects ``resume()`` to take (reported to the source for its prediction).
    var resumeEstimate: Double { get }
    /// Applies a batch of pages; a zero page means all zeroes. Called from several threads at once
    /// (one per page stream), never for the same pfn at the same time; idempotent per page.
    func writePages(_ pages: IncomingPages) throws
    /// Installs vCPU/platform state captured by the source.
    func restoreState(_ state: [UInt8]) throws
    /// Starts the VM.
    func resume() throws
    /// Throws the partial VM away (before resume) or destroys it.
    func discard() throws
    /// After `resume`, once the source has been told the VM runs here: bookkeeping that must not
    /// hold the VM's start or the source (Xen: the incoming domain takes the VM's name). The VM
    /// runs whatever happens here; a failure is reported, never undone.
    func settle() throws
}

/// Errors every driver reports, named for the operator.
public enum HypervisorError: Error, Equatable, Sendable, CustomStringConvertible {
    case noSuchVM(String)
    case vmExists(String)
    case vmNotRunning(String)
    case insufficientMemory(vm: String, neededBytes: UInt64, availableBytes: UInt64)
    case invalidState(String)
    case corruptImage(String)
    case systemCall(call: String, errno: Int32)
    case guestFailed(String)
    /// A helper tool (e.g. `xl restore`) took no input for `seconds`.
    case toolStalled(tool: String, seconds: Double)
    /// A toolstack call or tool failed: what was called, its status (exit code or library error
    /// code) and the last lines it said.
    case toolFailed(tool: String, status: Int32, output: String)
    case unsupported(String)

    public var description: String {
        switch self {
        case let .noSuchVM(n): return "no VM named '\(n)' on this host"
        case let .vmExists(n): return "a VM named '\(n)' already exists on this host"
        case let .vmNotRunning(n): return "VM '\(n)' is not running"
        case let .insufficientMemory(vm, need, have):
            return "not enough memory for '\(vm)': needs \(need >> 20) MiB, \(have >> 20) MiB free"
        case let .invalidState(s): return "invalid VM state: \(s)"
        case let .corruptImage(s): return "corrupt VM image: \(s)"
        case let .systemCall(call, e): return "\(call) failed: errno \(e) (\(String(cString: strerror(e))))"
        case let .guestFailed(s): return "guest failed: \(s)"
        case let .toolStalled(tool, seconds): return "`\(tool)` read nothing for \(Int(seconds)) s; gave up"
        case let .toolFailed(tool, status, output):
            return "\(tool) failed (\(status))" + (output.isEmpty ? "" : ": \(output)")
        case let .unsupported(s): return "unsupported: \(s)"
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
