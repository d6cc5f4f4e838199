import PalmHypervisor
import PalmWire

/// Which guest frames of a PVH/HVM domain hold memory, and palm's dense page numbering of them.
///
/// A PVH guest's physical address space is mostly holes: 128 MiB of RAM at the bottom, a handful of
/// special pages (console and xenstore rings, ACPI tables) just below 4 GiB. palm's engine numbers
/// only the populated frames, 0..<count, in ascending gpfn order, so a 128 MiB guest is a 128 MiB
/// image on the wire and in the destination's memory check. The layout travels in CONFIG so the
/// destination writes each page to the same gpfn; the ranges are sorted, disjoint and non-empty.
struct XenPageLayout: Equatable, Sendable {
    struct Range: Equatable, Sendable {
        var first: UInt64
        var count: UInt64
    }

    private(set) var ranges: [Range]
    /// Index of each range's first page in palm's numbering.
    private var starts: [UInt64]
    let count: UInt64

    init(ranges: [Range]) {
        self.ranges = ranges
        var s: [UInt64] = []
        var n: UInt64 = 0
        for r in ranges { s.append(n); n += r.count }
        starts = s
        count = n
    }

    /// Builds the layout from populated gpfns given in ascending order.
    init<S: Sequence>(populated: S) where S.Element == UInt64 {
        var ranges: [Range] = []
        for pfn in populated {
            if let last = ranges.last, last.first + last.count == pfn {
                ranges[ranges.count - 1].count += 1
            } else {
                ranges.append(Range(first: pfn, count: 1))
            }
        }
        self.init(ranges: ranges)
    }

    /// The gpfn of palm page `index`.
    func gpfn(_ index: UInt64) -> UInt64? {
        guard index < count else { return nil }
        var lo = 0, hi = ranges.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= index { lo = mid } else { hi = mid - 1 }
        }
        return ranges[lo].first + (index - starts[lo])
    }

    /// palm's index of a gpfn, nil for a frame outside the layout.
    func index(_ gpfn: UInt64) -> UInt64? {
        var lo = 0, hi = ranges.count - 1
        guard hi >= 0 else { return nil }
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if ranges[mid].first <= gpfn { lo = mid } else { hi = mid - 1 }
        }
        let r = ranges[lo]
        guard gpfn >= r.first, gpfn < r.first + r.count else { return nil }
        return starts[lo] + (gpfn - r.first)
    }

    func encode(into w: inout ByteWriter) {
        w.write(UInt32(ranges.count))
        for r in ranges {
            w.write(r.first)
            w.write(r.count)
        }
    }

    /// Decodes and checks a layout received from the wire: ranges sorted, disjoint, non-empty,
    /// inside the 52-bit frame space of the Xen stream.
    static func decode(from r: inout ByteReader, maxRanges: Int = 4096) throws -> XenPageLayout {
        let n = Int(try r.readUInt32("layout.ranges"))
        guard n <= maxRanges else { throw HypervisorError.corruptImage("page layout has \(n) ranges (at most \(maxRanges))") }
        var ranges: [Range] = []
        var end: UInt64 = 0
        for _ in 0..<n {
            let first = try r.readUInt64("layout.first")
            let count = try r.readUInt64("layout.count")
            guard count > 0, first >= end, first < (1 << 52), count <= (1 << 52) - first else {
                throw HypervisorError.corruptImage("page layout ranges are not sorted, disjoint and inside 2^52 frames")
            }
            ranges.append(Range(first: first, count: count))
            end = first + count
        }
        return XenPageLayout(ranges: ranges)
    }
}
