import PalmTLS
import PalmWire

/// The digest of a VM's memory image as both ends compute it:
///
///     image digest = SHA-256( SHA-256(page 0) ‖ SHA-256(page 1) ‖ … ‖ SHA-256(page n−1) )
///
/// Each side keeps the table of per-page digests (32 bytes per 4 KiB page, 0.8 % of RAM — not a
/// copy of it) and updates an entry whenever it sends or receives that page, so the final digest
/// costs one pass over the table instead of a pass over RAM while the VM is paused.
public final class ImageDigest {
    private var table: [UInt8]
    public let pageCount: UInt64
    private let hasher = PageHasher()
    private let zeroDigest: [UInt8]

    public init(pageCount: UInt64, pageSize: Int) {
        self.pageCount = pageCount
        let zero = [UInt8](repeating: 0, count: pageSize)
        zeroDigest = zero.withUnsafeBytes { PageHasher().hash($0).bytes }
        // Untouched pages of a fresh VM are zero pages.
        table = [UInt8](repeating: 0, count: Int(pageCount) * 32)
        table.withUnsafeMutableBufferPointer { t in
            for i in 0..<Int(pageCount) {
                for j in 0..<32 { t[i * 32 + j] = zeroDigest[j] }
            }
        }
    }

    /// Records the content of a page (nil: all zeroes).
    @inline(__always)
    public func record(pfn: UInt64, page: UnsafeRawBufferPointer?) {
        table.withUnsafeMutableBufferPointer { t in
            let slot = t.baseAddress! + Int(pfn) * 32
            if let page {
                hasher.hash(page, into: slot)
            } else {
                for j in 0..<32 { slot[j] = zeroDigest[j] }
            }
        }
    }

    public func finalize() -> Digest32 {
        var h = SHA256()
        h.update(table)
        return h.finalize()
    }

    /// The digest of a memory image read page by page (tests and verification tools).
    public static func of(pageCount: UInt64, pageSize: Int, read: (UInt64) throws -> UnsafeRawBufferPointer) rethrows -> Digest32 {
        let d = ImageDigest(pageCount: pageCount, pageSize: pageSize)
        for pfn in 0..<pageCount {
            let page = try read(pfn)
            d.record(pfn: pfn, page: PageScan.isZero(page) ? nil : page)
        }
        return d.finalize()
    }
}
