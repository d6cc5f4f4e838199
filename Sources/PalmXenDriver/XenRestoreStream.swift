import PalmSupport
import PalmHypervisor
#if canImport(Glibc)
import Glibc
#endif

/// Writes the stream `libxl_domain_create_restore` reads, so the destination builds the domain
/// through Xen's own restore path (libxl creates it, libxenguest fills it, xenstore and the
/// console are introduced as for any migrated domain) while the pages arrive through palm's
/// engine. The domain's configuration goes to libxl beside the stream (as xl's receiver passes
/// it), so the stream starts at libxl's own header.
///
/// Layout (docs/specs/libxl-migration-stream.pandoc and libxc-migration-stream.pandoc of Xen 4.17):
///
///     libxl header  ident "LibxlFmt" (big-endian u64), version 2, options 0 (little-endian stream)
///     libxl record  LIBXC_CONTEXT (empty body): what follows is libxenguest's stream
///       image hdr   marker ~0, id "XENF", version 3, options 0 (big-endian fields)
///       domain hdr  type X86_HVM (PVH is an HVM container), page shift 12, Xen major.minor
///       X86_CPUID_POLICY, X86_MSR_POLICY, STATIC_DATA_END       ← at creation (static data)
///       PAGE_DATA × n  (≤ 512 frames each; a frame may come again in a later round: last wins;
///                       a zero frame's first time is XALLOC, without data)
///       X86_TSC_INFO, HVM_CONTEXT, HVM_PARAMS, END              ← at hand-off (STATE)
///     libxl record  END
///
/// Every record is type (u32) + length (u32) + body padded to 8 bytes, little-endian.
/// One writer at a time (the destination's pipe lock, or the thread that writes a build stream).
final class XenRestoreStream: @unchecked Sendable {
    /// libxenguest's record types (`xg_sr_stream_format.h`, REC_TYPE_*).
    enum LibxcRecord: UInt32 {
        case end = 0x00, pageData = 0x01, tscInfo = 0x08, hvmContext = 0x09, hvmParams = 0x0a
        case staticDataEnd = 0x10, cpuidPolicy = 0x11, msrPolicy = 0x12
    }

    /// libxl's record types (`libxl_sr_stream_format.h`, REC_TYPE_*).
    enum LibxlRecord: UInt32 {
        case end = 0x00, libxcContext = 0x01
    }

    /// Header constants of the two streams.
    enum Header {
        /// libxl stream ident: "LibxlFmt".
        static let libxlIdent: UInt64 = 0x4c69_6278_6c46_6d74
        static let libxlVersion: UInt32 = 2
        /// libxenguest image header: marker ~0, id "XENF", version 3.
        static let imageMarker = UInt64.max
        static let imageID: UInt32 = 0x5845_4E46
        static let imageVersion: UInt32 = 3
        /// Domain header type X86_HVM (DHDR_TYPE_X86_HVM; PVH is an HVM container).
        static let domainX86HVM: UInt32 = 0x0000_0002
        static let pageShift: UInt16 = 12
    }

    static let batchPages = 512
    private let fd: Int32
    private let pageSize: Int
    private let stallTimeout: Double
    private let readerAlive: () -> Bool
    private var pendingPFNs: [UInt64] = []
    private var pendingData: [UInt8] = []

    /// Takes ownership of `fd` (the write end of the pipe the libxl restore reads). Writes never block
    /// without bound: a reader that takes no bytes for `stallTimeout` seconds, or for which
    /// `readerAlive` turns false while a write waits, fails the write with
    /// ``HypervisorError/toolStalled(tool:seconds:)`` or ``HypervisorError/guestFailed(_:)``.
    init(fd: Int32, pageSize: Int, stallTimeout: Double = 120, readerAlive: @escaping () -> Bool = { true }) {
        self.fd = fd
        self.pageSize = pageSize
        self.stallTimeout = stallTimeout
        self.readerAlive = readerAlive
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        pendingData.reserveCapacity(Self.batchPages * pageSize)
    }

    deinit { close() }

    private var closed = false
    func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd)
    }

    // MARK: stream parts

    func writeHeaders(xenMajor: UInt32, xenMinor: UInt32, cpuid: [UInt8], msrs: [UInt8]) throws {
        var w = XenStreamWriter()
        // libxl stream header (big-endian fields).
        w.be64(Header.libxlIdent)
        w.be32(Header.libxlVersion)
        w.be32(0)                        // options: little-endian stream
        w.record(type: LibxlRecord.libxcContext.rawValue, body: [])
        // libxc image header (big-endian) and domain header.
        w.be64(Header.imageMarker)
        w.be32(Header.imageID)
        w.be32(Header.imageVersion)
        w.be16(0)                        // options
        w.be16(0)                        // reserved
        w.be32(0)                        // reserved
        w.u32(Header.domainX86HVM)
        w.u16(Header.pageShift)
        w.u16(0)
        w.u32(xenMajor)
        w.u32(xenMinor)
        if !cpuid.isEmpty { w.record(type: LibxcRecord.cpuidPolicy.rawValue, body: cpuid) }
        if !msrs.isEmpty { w.record(type: LibxcRecord.msrPolicy.rawValue, body: msrs) }
        w.record(type: LibxcRecord.staticDataEnd.rawValue, body: [])
        try put(w.bytes)
    }

    /// Queues a batch of palm's pages at their frames in `layout`. `carried` is the set of palm
    /// pages this stream has carried before (updated here): a zero page seen for the first time
    /// goes as XALLOC (``zeroPage(gpfn:populated:)``).
    func pages(_ batch: IncomingPages, layout: XenPageLayout, carried: inout DirtyBitmap) throws {
        try batch.forEach { pfn, data in
            guard let gpfn = layout.gpfn(pfn) else {
                throw HypervisorError.corruptImage("page \(pfn) is outside the \(layout.count)-page layout")
            }
            if let data {
                try page(gpfn: gpfn, data: data)
            } else {
                try zeroPage(gpfn: gpfn, populated: carried.contains(pfn))
            }
            carried.set(pfn)
        }
    }

    /// Queues one frame's content; full batches go out as PAGE_DATA records.
    func page(gpfn: UInt64, data: UnsafeRawBufferPointer) throws {
        guard data.count == pageSize else { throw HypervisorError.corruptImage("page of \(data.count) bytes, expected \(pageSize)") }
        pendingPFNs.append(gpfn)
        pendingData.append(contentsOf: data)
        if pendingPFNs.count == Self.batchPages { try flush() }
    }

    /// Queues a frame of zeroes. A frame libxenguest has not populated yet (`populated` false)
    /// goes as XALLOC — populated, no data: Xen gives a domain only scrubbed frames — which spares
    /// the stream 4 KiB and libxenguest a mapping and a copy. A populated frame may hold an
    /// earlier round's data, so it gets its page of zeroes.
    func zeroPage(gpfn: UInt64, populated: Bool) throws {
        if populated {
            pendingPFNs.append(gpfn)
            pendingData.append(contentsOf: repeatElement(0, count: pageSize))
        } else {
            pendingPFNs.append(gpfn | Self.allocateOnly)
        }
        if pendingPFNs.count == Self.batchPages { try flush() }
    }

    /// Every frame of `layout` as XALLOC: libxenguest populates the domain's whole memory, zeroed,
    /// without a page of data (the destination then writes pages itself: XenGuestMemory).
    func allocateAll(_ layout: XenPageLayout) throws {
        for range in layout.ranges {
            for gpfn in range.first..<(range.first + range.count) { try zeroPage(gpfn: gpfn, populated: false) }
        }
        try flush()
    }

    /// XEN_DOMCTL_PFINFO_XALLOC (0xE << 28) in a PAGE_DATA entry's type bits (60–63).
    static let allocateOnly: UInt64 = 0xE << 60

    func flush() throws {
        guard !pendingPFNs.isEmpty else { return }
        var w = XenStreamWriter()
        let length = 8 + 8 * pendingPFNs.count + pendingData.count
        w.u32(LibxcRecord.pageData.rawValue)
        w.u32(UInt32(length))
        w.u32(UInt32(pendingPFNs.count))
        w.u32(0)
        for pfn in pendingPFNs { w.u64(pfn) }   // type NOTAB (0) or XALLOC in bits 60–63
        try put(w.bytes)
        try put(pendingData)                     // length is a multiple of 8: no padding
        pendingPFNs.removeAll(keepingCapacity: true)
        pendingData.removeAll(keepingCapacity: true)
    }

    /// The hand-off records, libxenguest's END and libxl's END.
    func writeTail(_ state: XenDomainState) throws {
        try flush()
        var w = XenStreamWriter()
        var tsc = XenStreamWriter()
        tsc.u32(state.tscMode)
        tsc.u32(state.tscKHz)
        tsc.u64(state.tscNanoseconds)
        tsc.u32(state.tscIncarnation)
        tsc.u32(0)
        w.record(type: LibxcRecord.tscInfo.rawValue, body: tsc.bytes)
        w.record(type: LibxcRecord.hvmContext.rawValue, body: state.hvmContext)
        if !state.params.isEmpty {
            var p = XenStreamWriter()
            p.u32(UInt32(state.params.count))
            p.u32(0)
            for (index, value) in state.params {
                p.u64(UInt64(index))
                p.u64(value)
            }
            w.record(type: LibxcRecord.hvmParams.rawValue, body: p.bytes)
        }
        w.record(type: LibxcRecord.end.rawValue, body: [])
        w.record(type: LibxlRecord.end.rawValue, body: [])
        try put(w.bytes)
    }

    /// Writes all of `bytes`. The pipe is non-blocking: while it is full, poll in slices of at
    /// most 250 ms, checking between slices that the restore still runs, and give up once no byte
    /// has gone out for `stallTimeout` seconds — a toolstack that stops reading must not hold the
    /// destination (and, through TLS back-pressure, the source) forever.
    private func put(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { buf in
            guard let base = buf.baseAddress else { return }
            var off = 0
            var lastProgress = MonotonicClock.now()
            while off < buf.count {
                let n = Glibc.write(fd, base + off, buf.count - off)
                if n > 0 {
                    off += n
                    lastProgress = MonotonicClock.now()
                    continue
                }
                guard n < 0, errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                    throw HypervisorError.systemCall(call: "write(restore stream)", errno: n < 0 ? errno : EIO)
                }
                let waited = MonotonicClock.now() - lastProgress
                if waited >= stallTimeout { throw HypervisorError.toolStalled(tool: "libxl_domain_create_restore", seconds: stallTimeout) }
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let slice = Int32(max(1, min(250, (stallTimeout - waited) * 1000)))
                if poll(&p, 1, slice) == 0, !readerAlive() {
                    throw HypervisorError.guestFailed("the libxl restore ended while its stream was being written")
                }
            }
        }
    }
}

/// Byte building for Xen's save/restore stream: records and most fields little-endian, the two
/// stream headers big-endian (palm's own wire format is big-endian throughout).
struct XenStreamWriter {
    var bytes: [UInt8] = []
    mutating func raw(_ b: [UInt8]) { bytes += b }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func be16(_ v: UInt16) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
    mutating func be32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
    mutating func be64(_ v: UInt64) { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
    /// type, length, body, zero padding to 8 bytes.
    mutating func record(type: UInt32, body: [UInt8]) {
        u32(type)
        u32(UInt32(body.count))
        bytes += body
        bytes += repeatElement(0, count: (8 - body.count % 8) % 8)
    }
}
