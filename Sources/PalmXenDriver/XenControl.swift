import PalmSupport
import PalmHypervisor
import PalmWire
import CXen
import CXenShims
#if canImport(Glibc)
import Glibc
#endif

/// One domain as libxenctrl reports it.
struct XenDomainInfo: Sendable {
    var domid: UInt32
    var totalPages: UInt64
    var maxPages: UInt64
    var vcpus: UInt32
    var hvm: Bool
    var paused: Bool
    var shutdown: Bool
    var shutdownReason: Int32
    var dying: Bool
    var uuid: [UInt8]
    /// Nanoseconds its vCPUs have run: 0 for a domain that never ran.
    var cpuTime: UInt64

    var suspended: Bool { shutdown && shutdownReason == palm_xen_shutdown_suspend() }
    /// The handle as libxl prints a UUID (lowercase, 8-4-4-4-12).
    var uuidString: String { XenDomainInfo.uuidString(uuid) }

    static func uuidString(_ bytes: [UInt8]) -> String {
        guard bytes.count == 16 else { return Hex.encode(bytes) }
        return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { Hex.encode(bytes[$0]) }.joined(separator: "-")
    }
}

/// The control handles of one agent: libxenctrl, libxenforeignmemory and libxenstore, opened once.
///
/// Every call that fails throws `HypervisorError.systemCall` naming the Xen call and carrying its
/// errno, so an operator reads "xc_domain_pause failed: errno 3 (No such process)", not "-1".
final class XenControl: @unchecked Sendable {
    let xch: OpaquePointer
    let fmem: OpaquePointer
    let xsh: OpaquePointer
    let pageSize: Int
    /// The same three handles as palm_xen_close wants them back.
    private var handles: palm_xen_handles

    init() throws {
        var handles = palm_xen_handles()
        var failed: UnsafePointer<CChar>?
        guard palm_xen_open(&handles, &failed) == 0, let xch = handles.xch, let fmem = handles.fmem, let xsh = handles.xsh else {
            throw HypervisorError.systemCall(call: failed.map { String(cString: $0) } ?? "xc_interface_open", errno: errno)
        }
        self.xch = xch
        self.fmem = fmem
        self.xsh = xsh
        self.handles = handles
        pageSize = Int(palm_xc_page_size())
    }

    deinit {
        palm_xen_close(&handles)
    }

    /// Throws the named call's errno when `rc` is negative.
    @discardableResult
    static func check(_ rc: Int32, _ call: String) throws -> Int32 {
        if rc < 0 { throw HypervisorError.systemCall(call: call, errno: errno == 0 ? EIO : errno) }
        return rc
    }

    func version() throws -> String {
        var buf = [CChar](repeating: 0, count: 64)
        try Self.check(palm_xen_version(xch, &buf, buf.count), "xc_version")
        return String(nulTerminated: buf)
    }

    func physinfo() throws -> (free: UInt64, total: UInt64) {
        var free: UInt64 = 0, total: UInt64 = 0
        try Self.check(palm_xen_physinfo(xch, &free, &total), "xc_physinfo")
        return (free, total)
    }

    func domains() throws -> [XenDomainInfo] {
        var result: [XenDomainInfo] = []
        var next: UInt32 = 0
        var buffer = [palm_xen_domain](repeating: palm_xen_domain(), count: 256)
        while true {
            let n = try Self.check(palm_xen_domains(xch, next, &buffer, UInt32(buffer.count)), "xc_domain_getinfolist")
            for d in buffer.prefix(Int(n)) { result.append(Self.info(d)) }
            if n < Int32(buffer.count) { break }
            next = buffer[Int(n) - 1].domid + 1
        }
        return result
    }

    func domain(_ domid: UInt32) throws -> XenDomainInfo? {
        var d = palm_xen_domain()
        let n = try Self.check(palm_xen_domains(xch, domid, &d, 1), "xc_domain_getinfolist")
        guard n == 1, d.domid == domid else { return nil }
        return Self.info(d)
    }

    private static func info(_ d: palm_xen_domain) -> XenDomainInfo {
        let uuid = withUnsafeBytes(of: d.handle) { Array($0) }
        return XenDomainInfo(domid: d.domid, totalPages: d.tot_pages, maxPages: d.max_pages, vcpus: d.online_vcpus,
                             hvm: d.hvm != 0, paused: d.paused != 0, shutdown: d.shutdown != 0,
                             shutdownReason: d.shutdown_reason, dying: d.dying != 0, uuid: uuid, cpuTime: d.cpu_time)
    }

    func unpause(_ domid: UInt32) throws { try Self.check(xc_domain_unpause(xch, domid), "xc_domain_unpause") }

    /// Resumes a domain whose suspend was cancelled: the guest sees its suspend call fail and carries on.
    func resumeCancelled(_ domid: UInt32) throws {
        try Self.check(xc_domain_resume(xch, domid, 1), "xc_domain_resume")
        guard xs_resume_domain(xsh, domid) else { throw HypervisorError.systemCall(call: "xs_resume_domain", errno: errno) }
    }

    /// Frames in the guest's physical address space (highest gpfn + 1).
    func p2mSize(_ domid: UInt32) throws -> UInt64 {
        var n: xen_pfn_t = 0
        try Self.check(xc_domain_nr_gpfns(xch, domid, &n), "xc_domain_nr_gpfns")
        return UInt64(n)
    }

    /// Frames whose type is neither XTAB (hole, or Xen's own pages such as the grant table and
    /// shared info) nor BROKEN: what libxenguest's save sends as data.
    static func isPopulated(_ type: xen_pfn_t) -> Bool {
        let t = UInt64(type) & UInt64(palm_xen_pfinfo_mask())
        return t != UInt64(palm_xen_pfinfo_xtab()) && t != UInt64(palm_xen_pfinfo_broken())
    }

    /// Types of `pfns` (in place), XEN_DOMCTL_PFINFO_* in bits 28–31.
    func pfnTypes(_ domid: UInt32, _ pfns: inout [xen_pfn_t]) throws {
        let count = UInt32(pfns.count)
        _ = try pfns.withUnsafeMutableBufferPointer { buf in
            try Self.check(palm_xen_pfn_types(xch, domid, count, buf.baseAddress), "xc_get_pfn_type_batch")
        }
    }

    /// Frames one foreign mapping covers at most.
    static let mappingWindow = 1024

    /// Maps `gpfns` of `domid` (read-only, or writable) in windows of at most ``mappingWindow``
    /// frames and calls `body(i, page)` with frame i's page while it is mapped; a frame that cannot
    /// be mapped throws, naming it. Calls from several threads map independently.
    func forEachMapped(_ domid: UInt32, _ gpfns: [xen_pfn_t], writable: Bool,
                       _ body: (Int, UnsafeMutableRawPointer) throws -> Void) throws {
        let prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        var start = 0
        while start < gpfns.count {
            let window = Array(gpfns[start..<min(start + Self.mappingWindow, gpfns.count)])
            var errors = [Int32](repeating: 0, count: window.count)
            guard let base = xenforeignmemory_map(fmem, domid, prot, window.count, window, &errors) else {
                throw HypervisorError.systemCall(call: "xenforeignmemory_map", errno: errno)
            }
            defer { _ = xenforeignmemory_unmap(fmem, base, window.count) }
            for i in window.indices {
                guard errors[i] == 0 else {
                    throw HypervisorError.systemCall(call: "xenforeignmemory_map(gpfn 0x\(String(UInt64(window[i]), radix: 16))\(writable ? ", writable" : ""))",
                                                     errno: -errors[i])
                }
                try body(start + i, base + i * pageSize)
            }
            start += window.count
        }
    }

    func hvmContext(_ domid: UInt32) throws -> [UInt8] {
        let size = try Self.check(xc_domain_hvm_getcontext(xch, domid, nil, 0), "xc_domain_hvm_getcontext(size)")
        var buf = [UInt8](repeating: 0, count: Int(size))
        let got = try Self.check(xc_domain_hvm_getcontext(xch, domid, &buf, UInt32(size)), "xc_domain_hvm_getcontext")
        return Array(buf.prefix(Int(got)))
    }

    func hvmParam(_ domid: UInt32, _ index: UInt32) throws -> UInt64 {
        var value: UInt64 = 0
        try Self.check(xc_hvm_param_get(xch, domid, index, &value), "xc_hvm_param_get(\(index))")
        return value
    }

    func setHVMContext(_ domid: UInt32, _ context: [UInt8]) throws {
        var buf = context
        try Self.check(xc_domain_hvm_setcontext(xch, domid, &buf, UInt32(buf.count)), "xc_domain_hvm_setcontext")
    }

    func setHVMParam(_ domid: UInt32, _ index: UInt32, _ value: UInt64) throws {
        try Self.check(xc_hvm_param_set(xch, domid, index, value), "xc_hvm_param_set(\(index))")
    }

    func setTSCInfo(_ domid: UInt32, mode: UInt32, nsec: UInt64, khz: UInt32, incarnation: UInt32) throws {
        try Self.check(xc_domain_set_tsc_info(xch, domid, mode, nsec, khz, incarnation), "xc_domain_set_tsc_info")
    }

    func tscInfo(_ domid: UInt32) throws -> (mode: UInt32, nsec: UInt64, khz: UInt32, incarnation: UInt32) {
        var mode: UInt32 = 0, khz: UInt32 = 0, inc: UInt32 = 0
        var nsec: UInt64 = 0
        try Self.check(xc_domain_get_tsc_info(xch, domid, &mode, &nsec, &khz, &inc), "xc_domain_get_tsc_info")
        return (mode, nsec, khz, inc)
    }

    func cpuPolicy(_ domid: UInt32) throws -> (cpuid: [UInt8], msrs: [UInt8]) {
        var leaves: UnsafeMutableRawPointer?, msrs: UnsafeMutableRawPointer?
        var lb: UInt32 = 0, mb: UInt32 = 0
        try Self.check(palm_xen_cpu_policy(xch, domid, &leaves, &lb, &msrs, &mb), "xc_cpu_policy_get_domain")
        defer { free(leaves); free(msrs) }
        let l = leaves.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(lb))) } ?? []
        let m = msrs.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(mb))) } ?? []
        return (l, m)
    }

    func cap(_ domid: UInt32) throws -> UInt32 {
        var cap: UInt32 = 0
        try Self.check(palm_xen_get_cap(xch, domid, &cap), "xc_sched_credit2_domain_get(cap)")
        return cap
    }

    func setCap(_ domid: UInt32, percent: UInt32) throws {
        try Self.check(palm_xen_set_cap(xch, domid, percent), "xc_sched_credit2_domain_set(cap)")
    }

    // MARK: xenstore

    func read(_ path: String) -> String? {
        var len: UInt32 = 0
        guard let p = xs_read(xsh, 0, path, &len) else { return nil }
        defer { free(p) }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: Int(len)), as: UTF8.self)
    }

    func write(_ path: String, _ value: String) throws {
        let ok = value.utf8CString.withUnsafeBufferPointer { buf in
            xs_write(xsh, 0, path, buf.baseAddress, UInt32(buf.count - 1))
        }
        guard ok else { throw HypervisorError.systemCall(call: "xs_write(\(path))", errno: errno) }
    }

    /// The children of `path` (empty when it does not exist).
    func list(_ path: String) -> [String] {
        var n: UInt32 = 0
        guard let entries = xs_directory(xsh, 0, path, &n) else { return [] }
        defer { free(entries) }   // one allocation holds the array and its strings
        return (0..<Int(n)).compactMap { entries[$0].map { String(cString: $0) } }
    }

    func remove(_ path: String) throws {
        guard xs_rm(xsh, 0, path) else {
            if errno == ENOENT { return }
            throw HypervisorError.systemCall(call: "xs_rm(\(path))", errno: errno)
        }
    }

    func name(of domid: UInt32) -> String? { read("/local/domain/\(domid)/name") }

    /// Guest domains (not dom0, not dying) with the names xenstore gives them.
    func namedDomains() throws -> [(info: XenDomainInfo, name: String)] {
        try domains().compactMap { d in
            guard d.domid != 0, !d.dying, let n = name(of: d.domid) else { return nil }
            return (d, n)
        }
    }

    /// The guest domain called `name`, if there is one.
    func domain(named name: String) throws -> XenDomainInfo? {
        try namedDomains().first { $0.name == name }?.info
    }
}
