import PalmHypervisor
import PalmSupport
import Foundation
import PalmWire

/// The `xen` driver: a dom0 agent's view of the host through libxenctrl, libxenforeignmemory and
/// libxenstore, with libxl, in-process, for what belongs to the toolstack (configuration, restore, rename, destroy).
///
/// Only PVH guests are migrated (HVM with a device model would need the emulator's state too;
/// PV log-dirty needs shadow paging, which Debian's 4.17.7 hypervisor is built without). The
/// guest must support Xen's PV suspend (Linux does) so it re-binds its event channels after the
/// move. Incoming domains are named NAME--incoming until they run; the source's domain is renamed
/// NAME--migratedaway during the hand-off, as `xl migrate` does, so source and destination may be
/// the same host.
public final class XenHypervisor: Hypervisor, @unchecked Sendable {
    public let name = "xen"
    public let version: String
    private let xc: XenControl
    private let toolstack: XenToolstack
    private let suspendTimeout: Double
    /// Bytes of pages an incoming domain holds while libxl is still building it.
    private let buildBufferBytes: Int
    private let suspendTimes: SuspendTimes

    /// Opens the control interfaces; fails with a named error outside dom0. `suspendEstimate` is
    /// what a guest's suspend is expected to take until this agent has measured one.
    public init(suspendTimeout: Double = 30, suspendEstimate: Double = 0.3,
                toolstackTimeout: Double = 120, buildBufferBytes: Int = 64 << 20) throws {
        self.buildBufferBytes = buildBufferBytes
        xc = try XenControl()
        version = try xc.version()
        toolstack = XenToolstack(timeout: toolstackTimeout)
        self.suspendTimeout = suspendTimeout
        suspendTimes = SuspendTimes(initial: suspendEstimate)
    }

    /// VM sizes are what a migration sends (the populated frames of the page layout), so the
    /// coordinator's tickets cover exactly what CONFIG will announce. The layout scan is cached per
    /// domain until its page total changes.
    public func listVMs() throws -> [VMInfo] {
        try xc.namedDomains().map { d, n in
            let state: VMRunState = n.hasSuffix(XenIncomingDomain.suffix) ? .incoming
                : d.shutdown ? .stopped : d.paused ? .paused : .running
            var pages = d.totalPages
            if d.hvm, state == .running || state == .paused {
                pages = (try? layoutPages(d)) ?? d.totalPages
            }
            return VMInfo(name: n, pageSize: xc.pageSize, pageCount: pages, vcpus: max(d.vcpus, 1), state: state)
        }
    }

    private let sizes = SizeCache()

    private func layoutPages(_ d: XenDomainInfo) throws -> UInt64 {
        if let cached = sizes.get(d.domid, d.totalPages) { return cached }
        let count = try XenSourceDomain.scanLayout(xc: xc, domid: d.domid, p2mSize: try xc.p2mSize(d.domid)).count
        sizes.set(d.domid, d.totalPages, count)
        return count
    }

    /// Layout sizes by domid, valid while the domain's page total is unchanged.
    private final class SizeCache: Sendable {
        private let entries = LockedValueBox([UInt32: (total: UInt64, pages: UInt64)]())
        func get(_ domid: UInt32, _ total: UInt64) -> UInt64? {
            entries.withLockedValue { entries in
                guard let e = entries[domid], e.total == total else { return nil }
                return e.pages
            }
        }
        func set(_ domid: UInt32, _ total: UInt64, _ pages: UInt64) {
            entries.withLockedValue { $0[domid] = (total, pages) }
        }
    }

    /// Set by ``keepLifecycle(report:)`` (palm-dest); palm-source keeps nothing.
    private let keeper = LockedValueBox<XenLifecycleKeeper?>(nil)

    /// Starts the one ``XenLifecycleKeeper`` of this agent and re-attaches to the domains it kept.
    public func keepLifecycle(report: @escaping @Sendable (LifecycleEvent) -> Void) throws -> [String] {
        let k = try keeper.withLockedValue { k in
            if let k { return k }
            let fresh = try XenLifecycleKeeper(xc: xc, timeout: toolstack.timeout, report: report)
            k = fresh
            return fresh
        }
        return try k.reattach()
    }

    /// Hands a domain that runs here after its move to the keeper (when there is one).
    private func keep(domid: UInt32, name: String) throws {
        try keeper.withLockedValue { $0 }?.keep(domid: domid, name: name)
    }

    public func freeMemoryBytes() throws -> UInt64 { try xc.physinfo().free }

    public func openSource(vm: String) throws -> SourceDomain {
        guard let d = try xc.domain(named: vm) else { throw HypervisorError.noSuchVM(vm) }
        return try XenSourceDomain(xc: xc, toolstack: toolstack, domid: d.domid, name: vm, suspendTimeout: suspendTimeout,
                                   suspendTimes: suspendTimes)
    }

    public func createIncoming(config: VMConfig) throws -> DestinationDomain {
        guard try xc.domain(named: config.name + XenIncomingDomain.suffix) == nil else { throw HypervisorError.vmExists(config.name + XenIncomingDomain.suffix) }
        let need = config.pageCount * UInt64(config.pageSize)
        let free = try freeMemoryBytes()
        guard need <= free else { throw HypervisorError.insufficientMemory(vm: config.name, neededBytes: need, availableBytes: free) }
        return try XenIncomingDomain(xc: xc, toolstack: toolstack, config: config, buildBufferBytes: buildBufferBytes,
                                     keep: { [weak self] domid, name in try self?.keep(domid: domid, name: name) })
    }

    /// Incoming domains by name, and those a killed palm-dest left before xenstore named them
    /// (found through their marks, `XenIncomingMarks`).
    public func incomingVMs() -> [String] {
        let suffix = XenIncomingDomain.suffix
        var vms = Set(((try? xc.namedDomains()) ?? []).compactMap { _, n in
            n.hasSuffix(suffix) ? String(n.dropLast(suffix.count)) : nil
        })
        let marks = XenIncomingMarks(xc: xc)
        for mark in marks.all() where mark.incomingName.hasSuffix(suffix) {
            if !((try? marks.unnamedBuilds(of: mark)) ?? []).isEmpty { vms.insert(String(mark.incomingName.dropLast(suffix.count))) }
        }
        return vms.sorted()
    }

    public func completeIncoming(vm: String) throws {
        guard let d = try xc.domain(named: vm + XenIncomingDomain.suffix) else { throw HypervisorError.noSuchVM(vm + XenIncomingDomain.suffix) }
        if d.paused { try xc.unpause(d.domid) }
        try toolstack.rename(domid: d.domid, to: vm)
        try keep(domid: d.domid, name: vm)
        let marks = XenIncomingMarks(xc: xc)
        for mark in marks.marks(vm: vm) { try? marks.remove(uuid: mark.uuid) }
    }

    /// Destroys `NAME--incoming` and any domain its build left unnamed, then forgets the marks.
    public func discardIncoming(vm: String) throws {
        if let d = try xc.domain(named: vm + XenIncomingDomain.suffix) { try toolstack.destroy(domid: d.domid) }
        let marks = XenIncomingMarks(xc: xc)
        for mark in marks.marks(vm: vm) {
            for d in try marks.unnamedBuilds(of: mark) { try toolstack.destroy(domid: d.domid) }
            try marks.remove(uuid: mark.uuid)
        }
    }
}
