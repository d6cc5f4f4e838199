import PalmSupport
import PalmHypervisor
import CXenShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A running PVH/HVM domain as the source of a migration, driven through libxenctrl and
/// libxenforeignmemory: log-dirty tracking, read-only foreign mappings of at most
/// `XenControl.mappingWindow` frames per mapping, a cooperative suspend through xenstore's control/shutdown
/// (so the guest re-binds its event channels when it wakes up elsewhere), the HVM context.
///
/// Guarantees: until `destroy`, the domain exists here; `resume` after `pause` cancels the
/// suspend and the guest carries on where it was (its suspend call returns "cancelled").
final class XenSourceDomain: SourceDomain {
    /// Frames one page-type query covers (Xen's maximum for getpageframeinfo3).
    static let window = 1024

    let info: VMInfo
    let platform: [UInt8]
    private let xc: XenControl
    private let toolstack: XenToolstack
    private let domid: UInt32
    private let layout: XenPageLayout
    private let p2mSize: UInt64
    private let suspendTimeout: Double
    private let suspendTimes: SuspendTimes
    private var dirtyLog: OpaquePointer?
    private var suspended = false
    private var renamedTo: String?
    /// The domain's scheduler cap before palm throttled it (nil: not throttled).
    private var originalCap: UInt32?

    init(xc: XenControl, toolstack: XenToolstack, domid: UInt32, name: String, suspendTimeout: Double,
         suspendTimes: SuspendTimes) throws {
        self.xc = xc
        self.toolstack = toolstack
        self.domid = domid
        self.suspendTimeout = suspendTimeout
        self.suspendTimes = suspendTimes
        guard let d = try xc.domain(domid), !d.dying else { throw HypervisorError.noSuchVM(name) }
        guard d.hvm else {
            throw HypervisorError.unsupported("'\(name)' is a PV guest; palm migrates PVH and HVM guests (PV log-dirty needs shadow paging)")
        }
        guard !d.shutdown else { throw HypervisorError.vmNotRunning(name) }
        let size = try xc.p2mSize(domid)
        p2mSize = size
        // The page-type scan is Xen's work (serialised domctls), libxl's configuration mostly
        // xenstored's: under emulation each takes a second or so, so they run side by side.
        let scanning = BackgroundResult(name: "palm-xen-scan") { try Self.scanLayout(xc: xc, domid: domid, p2mSize: size) }
        let config: [UInt8]
        do {
            config = try toolstack.configJSON(domid: domid)
            guard XenToolstack.guestType(config) == "pvh" else {
                throw HypervisorError.unsupported("'\(name)' is an HVM guest with a device model; palm's Xen driver migrates PVH guests")
            }
        } catch {
            _ = try? scanning.wait()
            throw error
        }
        layout = try scanning.wait()
        let policy = try xc.cpuPolicy(domid)
        let version = try xc.version()
        let parts = version.split(whereSeparator: { !$0.isNumber }).compactMap { UInt32($0) }
        var description = XenPlatformConfig(layout: layout, configJSON: config, cpuid: policy.cpuid, msrs: policy.msrs,
                                            xenMajor: parts.first ?? 4, xenMinor: parts.dropFirst().first ?? 17)
        // The running guest's state, so the destination can build the domain — devices and all —
        // during pre-copy (XenIncomingDomain); STATE replaces it at the hand-off. Offered only
        // when the description still fits CONFIG; without it the destination builds at the end.
        description.provisionalState = try XenDomainState.capture(xc: xc, domid: domid)
        var encoded = description.encode()
        if encoded.count > XenPlatformConfig.maxEncodedSize {
            description.provisionalState = nil
            encoded = description.encode()
        }
        platform = encoded
        info = VMInfo(name: name, pageSize: xc.pageSize, pageCount: layout.count, vcpus: max(d.vcpus, 1),
                      state: d.paused ? .paused : .running)
    }

    /// Populated frames (`XenControl.isPopulated`), scanned in batches of `window` gpfns.
    static func scanLayout(xc: XenControl, domid: UInt32, p2mSize: UInt64) throws -> XenPageLayout {
        var populated: [UInt64] = []
        var start: UInt64 = 0
        while start < p2mSize {
            let n = Int(min(UInt64(window), p2mSize - start))
            var batch = (0..<n).map { xen_pfn_t(start + UInt64($0)) }
            try xc.pfnTypes(domid, &batch)
            for (i, type) in batch.enumerated() where XenControl.isPopulated(type) { populated.append(start + UInt64(i)) }
            start += UInt64(n)
        }
        return XenPageLayout(populated: populated)
    }

    /// The last suspend this agent measured (any guest), or the configured estimate.
    var pauseEstimate: Double { suspendTimes.estimate }

    func pause() throws {
        guard !suspended else { return }
        let start = MonotonicClock.now()
        try suspendGuest()
        suspended = true
        suspendTimes.record(MonotonicClock.now() - start)
    }

    /// When the destination is this same host, its incoming domain must take the VM's name after
    /// COMMIT, so the source goes by NAME--migratedaway from the stop-and-copy on (as under `xl
    /// migrate`). Done before the suspend so the `xl rename` is not part of the downtime; a VM
    /// moving to another host keeps its name until it is destroyed.
    func prepareForPause() throws {
        guard renamedTo == nil else { return }
        guard try xc.domain(named: info.name + XenIncomingDomain.suffix) != nil else { return }
        try toolstack.rename(domid: domid, to: "\(info.name)--migratedaway")
        renamedTo = info.name
    }

    /// Asks the guest to suspend (control/shutdown = "suspend"), waits for the acknowledgement and
    /// for Xen to report the domain shut down with reason "suspend".
    private func suspendGuest() throws {
        let control = "/local/domain/\(domid)/control/shutdown"
        try xc.write(control, "suspend")
        let start = MonotonicClock.now()
        var acknowledged = false
        while true {
            guard let d = try xc.domain(domid) else { throw HypervisorError.guestFailed("\(info.name) vanished while suspending") }
            if d.suspended { return }
            if d.shutdown { throw HypervisorError.guestFailed("\(info.name) shut down (reason \(d.shutdownReason)) instead of suspending") }
            if !acknowledged { acknowledged = (xc.read(control) ?? "") != "suspend" }
            if MonotonicClock.now() - start > suspendTimeout {
                if !acknowledged { try? xc.write(control, "") }
                throw HypervisorError.guestFailed("\(info.name) did not suspend within \(Int(suspendTimeout)) s"
                                                  + (acknowledged ? " after acknowledging" : " (no acknowledgement: does the guest have Xen PV suspend support?)"))
            }
            usleep(acknowledged ? 500 : 2_000)
        }
    }

    /// The guest runs again first; getting its name back comes second, so a failing `xl rename`
    /// can leave a running guest under NAME--migratedaway but never a suspended one.
    func resume() throws {
        // A pause that failed late (the guest acknowledged, then took longer than the timeout)
        // can still have suspended the guest: what Xen reports decides, not only the flag.
        if !suspended, let d = try? xc.domain(domid), d.suspended { suspended = true }
        if suspended {
            try xc.resumeCancelled(domid)
            suspended = false
        }
        if let original = renamedTo {
            try toolstack.rename(domid: domid, to: original)
            renamedTo = nil
        }
    }

    func enableDirtyLog() throws {
        guard dirtyLog == nil else { return }
        guard let ld = palm_xen_logdirty_enable(xc.xch, domid, UInt(p2mSize)) else {
            throw HypervisorError.systemCall(call: "xc_shadow_control(ENABLE_LOGDIRTY)", errno: errno)
        }
        dirtyLog = ld
    }

    func collectDirty(into bitmap: inout DirtyBitmap) throws -> Int {
        guard let ld = dirtyLog else { throw HypervisorError.invalidState("log-dirty is not enabled for \(info.name)") }
        var words = [UInt64](repeating: 0, count: Int((p2mSize + 63) / 64))
        let rc = words.withUnsafeMutableBufferPointer { palm_xen_logdirty_clean(ld, $0.baseAddress, $0.count) }
        try XenControl.check(rc, "xc_logdirty_control(CLEAN)")
        var outside: [xen_pfn_t] = []
        var count = 0
        for (w, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                let gpfn = UInt64(w) << 6 | UInt64(bits.trailingZeroBitCount)
                bits &= bits - 1
                if let index = layout.index(gpfn) {
                    if !bitmap.contains(index) { bitmap.set(index); count += 1 }
                } else {
                    outside.append(xen_pfn_t(gpfn))
                }
            }
        }
        try checkOutside(outside)
        return count
    }

    /// Dirty frames outside the layout are Xen's own pages or holes; a frame that has become
    /// populated means the guest's memory layout changed (ballooning), which this driver refuses.
    private func checkOutside(_ gpfns: [xen_pfn_t]) throws {
        guard !gpfns.isEmpty else { return }
        for chunk in stride(from: 0, to: gpfns.count, by: Self.window) {
            var batch = Array(gpfns[chunk..<min(chunk + Self.window, gpfns.count)])
            let original = batch
            try xc.pfnTypes(domid, &batch)
            for (i, t) in batch.enumerated() where XenControl.isPopulated(t) {
                throw HypervisorError.invalidState("\(info.name)'s memory layout changed during the migration: gpfn 0x\(String(UInt64(original[i]), radix: 16)) became populated (ballooning is not supported while migrating)")
            }
        }
    }

    func disableDirtyLog() throws {
        guard let ld = dirtyLog else { return }
        dirtyLog = nil
        try XenControl.check(palm_xen_logdirty_disable(ld), "xc_shadow_control(OFF)")
    }

    func peekDirtyCount() throws -> Int? {
        guard let ld = dirtyLog else { throw HypervisorError.invalidState("log-dirty is not enabled for \(info.name)") }
        var count: UInt32 = 0
        try XenControl.check(palm_xen_logdirty_peek(ld, &count), "xc_logdirty_control(PEEK)")
        return Int(count)
    }

    /// Read-only foreign mappings (XenControl.forEachMapped), copied out and unmapped; calls from
    /// several threads map independently.
    func copyPages(_ pfns: UnsafeBufferPointer<UInt64>, into buffer: UnsafeMutableRawPointer) throws {
        let size = xc.pageSize
        let gpfns = try pfns.map { pfn -> xen_pfn_t in
            guard let g = layout.gpfn(pfn) else {
                throw HypervisorError.invalidState("page \(pfn) is outside \(info.name)'s \(layout.count) pages")
            }
            return xen_pfn_t(g)
        }
        try xc.forEachMapped(domid, gpfns, writable: false) { i, page in
            (buffer + i * size).copyMemory(from: page, byteCount: size)
        }
    }

    func captureState() throws -> [UInt8] {
        guard suspended else { throw HypervisorError.invalidState("\(info.name) must be suspended to capture its state") }
        return try XenDomainState.capture(xc: xc, domid: domid).encode()
    }

    /// Auto-converge as a scheduler cap: (100 − percent) % of a CPU per vCPU, never looser than
    /// the cap the domain had; 0 puts the domain's own cap back.
    func setThrottle(percent: Int) throws {
        if percent <= 0 {
            guard let original = originalCap else { return }
            try xc.setCap(domid, percent: original)
            originalCap = nil
            return
        }
        let own = try originalCap ?? xc.cap(domid)
        originalCap = own
        var cap = UInt32(max(1, 100 - min(percent, 99))) * info.vcpus
        if own > 0 { cap = min(cap, own) }
        try xc.setCap(domid, percent: cap)
    }

    func destroy() throws {
        if let ld = dirtyLog { dirtyLog = nil; _ = palm_xen_logdirty_disable(ld) }
        try toolstack.destroy(domid: domid)
        renamedTo = nil
        suspended = false
    }

    deinit {
        if let ld = dirtyLog { _ = palm_xen_logdirty_disable(ld) }
    }
}

/// How long guest suspends took on this host: the source's pause estimate for the next one.
final class SuspendTimes: Sendable {
    private let last: LockedValueBox<Double>

    init(initial: Double) { last = LockedValueBox(initial) }

    var estimate: Double { last.current }

    func record(_ seconds: Double) { last.withLockedValue { $0 = seconds } }
}
