import PalmHypervisor
import PalmWire

/// What a Xen source sends in STATE, captured while the guest is suspended: TSC parameters, the
/// HVM context of every vCPU and device, and the HVM parameters libxenguest's own save carries
/// (non-zero ones). Encoded big-endian; version 1.
struct XenDomainState: Equatable {
    static let version: UInt8 = 1
    /// HVM parameters Xen's save path carries (xg_sr_save_x86_hvm.c), by index.
    static let savedParams: [UInt32] = [
        1,   // STORE_PFN
        5,   // IOREQ_PFN
        6,   // BUFIOREQ_PFN
        27,  // PAGING_RING_PFN
        28,  // MONITOR_RING_PFN
        29,  // SHARING_RING_PFN
        37,  // VM86_TSS_SIZED
        17,  // CONSOLE_PFN
        19,  // ACPI_IOPORTS_LOCATION
        9,   // VIRIDIAN
        12,  // IDENT_PT
        34,  // VM_GENERATION_ID_ADDR
        32,  // IOREQ_SERVER_PFN
        33,  // NR_IOREQ_SERVER_PAGES
        36,  // X87_FIP_WIDTH
        38,  // MCA_CAP
    ]

    var tscMode: UInt32
    var tscNanoseconds: UInt64
    var tscKHz: UInt32
    var tscIncarnation: UInt32
    var hvmContext: [UInt8]
    var params: [(UInt32, UInt64)]

    static func == (a: XenDomainState, b: XenDomainState) -> Bool {
        a.encode() == b.encode()
    }

    /// The state of domain `domid` now (Xen pauses the domain for the HVM context's copy).
    static func capture(xc: XenControl, domid: UInt32) throws -> XenDomainState {
        let tsc = try xc.tscInfo(domid)
        let context = try xc.hvmContext(domid)
        var params: [(UInt32, UInt64)] = []
        for index in savedParams {
            let v = try xc.hvmParam(domid, index)
            if v != 0 { params.append((index, v)) }
        }
        return XenDomainState(tscMode: tsc.mode, tscNanoseconds: tsc.nsec, tscKHz: tsc.khz, tscIncarnation: tsc.incarnation,
                              hvmContext: context, params: params)
    }

    /// Installs this state in paused domain `domid` in libxenguest's restore order: TSC, HVM
    /// context, then the parameters (the event channels libxl allocated are not among them).
    func apply(xc: XenControl, domid: UInt32) throws {
        try xc.setTSCInfo(domid, mode: tscMode, nsec: tscNanoseconds, khz: tscKHz, incarnation: tscIncarnation)
        try xc.setHVMContext(domid, hvmContext)
        for (index, value) in params { try xc.setHVMParam(domid, index, value) }
    }

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + hvmContext.count + params.count * 12)
        w.write(Self.version)
        w.write(tscMode)
        w.write(tscNanoseconds)
        w.write(tscKHz)
        w.write(tscIncarnation)
        w.write(lengthPrefixed: hvmContext)
        w.write(UInt32(params.count))
        for (i, v) in params {
            w.write(i)
            w.write(v)
        }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> XenDomainState {
        try bytes.withUnsafeBytes { buf in
            var r = ByteReader(buf)
            let v = try r.readUInt8("xenstate.version")
            guard v == version else { throw HypervisorError.corruptImage("Xen state version \(v), expected \(version)") }
            let mode = try r.readUInt32("tsc.mode")
            let nsec = try r.readUInt64("tsc.nsec")
            let khz = try r.readUInt32("tsc.khz")
            let inc = try r.readUInt32("tsc.incarnation")
            let ctx = try r.readLengthPrefixed("hvm.context", limit: 1 << 20)
            guard !ctx.isEmpty else { throw HypervisorError.corruptImage("empty HVM context") }
            let n = Int(try r.readUInt32("hvm.params"))
            guard n <= savedParams.count else { throw HypervisorError.corruptImage("\(n) HVM parameters (at most \(savedParams.count))") }
            var params: [(UInt32, UInt64)] = []
            for _ in 0..<n {
                let i = try r.readUInt32("hvm.param.index")
                guard savedParams.contains(i) else { throw HypervisorError.corruptImage("HVM parameter \(i) is not one a migration carries") }
                params.append((i, try r.readUInt64("hvm.param.value")))
            }
            guard r.remaining == 0 else { throw HypervisorError.corruptImage("\(r.remaining) trailing bytes after the Xen state") }
            return XenDomainState(tscMode: mode, tscNanoseconds: nsec, tscKHz: khz, tscIncarnation: inc, hvmContext: ctx, params: params)
        }
    }
}
