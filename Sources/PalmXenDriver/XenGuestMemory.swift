import PalmHypervisor
import PalmSupport
import CXen
#if canImport(Glibc)
import Glibc
#endif

/// The memory of an incoming domain libxl has already built (paused, its frames populated and
/// zero, its devices coming up): received pages go straight in through writable foreign
/// mappings, as libxenguest's restore writes them, without a stream in between.
///
/// Guarantees: a page's last write wins (the engine never hands two writes of one page over at
/// once); a zero page costs nothing until the page has held data, then it is zeroed; the frames
/// of the xenstore and console rings are held back — xenstored and xenconsoled attached to them
/// when libxl built the domain, and must not read a ring that changes under them while the guest
/// runs elsewhere — and written by ``writeHeldBack()`` at the hand-off, with the guest still
/// paused, as a restore would have left them.
final class XenGuestMemory: @unchecked Sendable {
    let domid: UInt32
    private let xc: XenControl
    private let layout: XenPageLayout
    private let heldBackFrames: Set<UInt64>
    /// Pages that hold data (a zero page must then be written), and the latest content of the
    /// held-back frames.
    private let book: LockedValueBox<(written: DirtyBitmap, heldBack: [UInt64: [UInt8]])>

    init(xc: XenControl, domid: UInt32, layout: XenPageLayout, heldBack frames: Set<UInt64>) {
        self.xc = xc
        self.domid = domid
        self.layout = layout
        heldBackFrames = frames
        book = LockedValueBox((DirtyBitmap(pageCount: layout.count), [:]))
    }

    func write(_ pages: IncomingPages) throws {
        let size = pages.pageSize
        // What goes where, decided under the lock; the copies run outside it.
        var gpfns: [xen_pfn_t] = []
        var sources: [UnsafeRawPointer?] = []   // nil: zero the frame
        gpfns.reserveCapacity(pages.pfns.count)
        sources.reserveCapacity(pages.pfns.count)
        try book.withLockedValue { book in
            try pages.forEach { pfn, data in
                guard let gpfn = layout.gpfn(pfn) else {
                    throw HypervisorError.corruptImage("page \(pfn) is outside the \(layout.count)-page layout")
                }
                if heldBackFrames.contains(gpfn) {
                    book.heldBack[gpfn] = data.map { Array($0) } ?? [UInt8](repeating: 0, count: size)
                    return
                }
                if data == nil, !book.written.contains(pfn) { return }   // populated zero, never written
                book.written.set(pfn)
                gpfns.append(xen_pfn_t(gpfn))
                sources.append(data?.baseAddress)
            }
        }
        try xc.forEachMapped(domid, gpfns, writable: true) { i, page in
            if let source = sources[i] {
                page.copyMemory(from: source, byteCount: size)
            } else {
                page.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            }
        }
    }

    /// Writes the held-back ring frames' last content (the guest must be paused).
    func writeHeldBack() throws {
        let held = book.withLockedValue { $0.heldBack }
        let frames = held.keys.sorted()
        guard !frames.isEmpty else { return }
        try xc.forEachMapped(domid, frames.map { xen_pfn_t($0) }, writable: true) { i, page in
            guard let content = held[frames[i]] else { return }
            content.withUnsafeBytes { page.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }
}
