import Atomics
import PalmCrypto
import PalmWire

/// The digest of a VM's memory image as both ends compute it: a three-level hash tree whose
/// inner nodes are recomputed only where pages changed, so the hand-off costs O(dirty pages).
///
/// ```text
///   leaf      L_i = SHA-256(page i)                          one per page (zero page: SHA-256 of 4 KiB of zeros)
///   chunk     C_j = SHA-256(L_64j ‖ … ‖ L_64j+63)             one per 64 pages (the last may be shorter)
///   group     G_k = SHA-256(C_64k ‖ … ‖ C_64k+63)             one per 4,096 pages (16 MiB of RAM)
///   image digest  = SHA-256("palm-image-v2" ‖ pageCount u64 ‖ G_0 ‖ … ‖ G_last)
///
///   table sizes for a 4 GiB guest: leaves 32 MiB (0.8 % of RAM), chunks 512 KiB, groups 8 KiB
/// ```
/// Each side writes a page's leaf on the thread that has the page in cache (``record(pfn:page:hasher:)``)
/// and marks its chunk; ``seal()`` — after every round, while the VM still runs — recomputes the
/// marked chunks and their groups. At the hand-off only the final round's chunks are left, so
/// ``finalize()`` costs (pages of the final round) × 2 KiB of hashing plus the 8 KiB root.
///
/// Threads: `record` and `recordZero` may run on many threads at once for *different* pages;
/// `seal` and `finalize` run alone (the engine calls them between rounds).
public final class ImageDigest: @unchecked Sendable {
    public let pageCount: UInt64
    public static let fanOut = 64
    static let domain = Array("palm-image-v2".utf8)

    private let leaves: UnsafeMutablePointer<UInt8>
    private let chunks: UnsafeMutablePointer<UInt8>
    private let groups: UnsafeMutablePointer<UInt8>
    /// One byte per chunk: a leaf of it changed since the last seal (relaxed atomic stores).
    private let changed: UnsafeMutablePointer<UnsafeAtomic<UInt8>.Storage>
    private let chunkCount: Int
    private let groupCount: Int
    private let zeroLeaf: [UInt8]
    private let sealHasher = PageHasher()

    public init(pageCount: UInt64, pageSize: Int) {
        self.pageCount = pageCount
        let pages = Int(pageCount)
        chunkCount = (pages + Self.fanOut - 1) / Self.fanOut
        groupCount = (chunkCount + Self.fanOut - 1) / Self.fanOut
        zeroLeaf = [UInt8](repeating: 0, count: pageSize).withUnsafeBytes { PageHasher().hash($0).bytes }
        leaves = .allocate(capacity: pages * 32)
        chunks = .allocate(capacity: chunkCount * 32)
        groups = .allocate(capacity: groupCount * 32)
        changed = .allocate(capacity: chunkCount)
        zeroLeaf.withUnsafeBufferPointer { z in
            for i in 0..<pages { (leaves + i * 32).update(from: z.baseAddress!, count: 32) }
        }
        // A fresh VM is all zero pages: every chunk and group is computed once now.
        changed.initialize(repeating: UnsafeAtomic<UInt8>.Storage(1), count: chunkCount)
        seal()
    }

    deinit {
        leaves.deallocate()
        chunks.deallocate()
        groups.deallocate()
        changed.deallocate()
    }

    /// Hashes `page` (exactly as sent or received) into page `pfn`'s leaf.
    @inline(__always)
    public func record(pfn: UInt64, page: UnsafeRawBufferPointer, hasher: PageHasher) {
        hasher.hash(page, into: leaves + Int(pfn) * 32)
        mark(pfn)
    }

    /// Page `pfn` is all zeroes.
    @inline(__always)
    public func recordZero(pfn: UInt64) {
        zeroLeaf.withUnsafeBufferPointer { (leaves + Int(pfn) * 32).update(from: $0.baseAddress!, count: 32) }
        mark(pfn)
    }

    @inline(__always)
    private func mark(_ pfn: UInt64) {
        UnsafeAtomic<UInt8>(at: changed + Int(pfn) / Self.fanOut).store(1, ordering: .relaxed)
    }

    /// Recomputes the chunks whose leaves changed and the groups above them. Returns how many
    /// chunks it hashed.
    @discardableResult
    public func seal() -> Int {
        var sealed = 0
        var groupChanged = [Bool](repeating: false, count: groupCount)
        for j in 0..<chunkCount where UnsafeAtomic<UInt8>(at: changed + j).exchange(0, ordering: .acquiring) != 0 {
            let first = j * Self.fanOut
            let count = min(Self.fanOut, Int(pageCount) - first)
            sealHasher.hash(UnsafeRawBufferPointer(start: leaves + first * 32, count: count * 32), into: chunks + j * 32)
            groupChanged[j / Self.fanOut] = true
            sealed += 1
        }
        for k in 0..<groupCount where groupChanged[k] {
            let first = k * Self.fanOut
            let count = min(Self.fanOut, chunkCount - first)
            sealHasher.hash(UnsafeRawBufferPointer(start: chunks + first * 32, count: count * 32), into: groups + k * 32)
        }
        return sealed
    }

    /// Seals what changed and returns the image digest.
    public func finalize() -> Digest32 {
        seal()
        var h = SHA256()
        h.update(Self.domain)
        var w = ByteWriter(capacity: 8)
        w.write(pageCount)
        h.update(w.bytes)
        h.update(UnsafeRawBufferPointer(start: groups, count: groupCount * 32))
        return h.finalize()
    }

    /// The digest of a memory image read page by page, computed from scratch (tests and
    /// verification tools: an independent check of what the engine kept incrementally).
    public static func of(pageCount: UInt64, pageSize: Int, read: (UInt64) throws -> UnsafeRawBufferPointer) rethrows -> Digest32 {
        let hasher = PageHasher()
        var leaves = [UInt8](repeating: 0, count: Int(pageCount) * 32)
        try leaves.withUnsafeMutableBufferPointer { l in
            for pfn in 0..<Int(pageCount) {
                hasher.hash(try read(UInt64(pfn)), into: l.baseAddress! + pfn * 32)
            }
        }
        func level(_ below: [UInt8]) -> [UInt8] {
            let nodes = below.count / 32
            var out: [UInt8] = []
            for first in stride(from: 0, to: nodes, by: fanOut) {
                let end = min(first + fanOut, nodes)
                out += below[(first * 32)..<(end * 32)].withUnsafeBytes { hasher.hash($0).bytes }
            }
            return out
        }
        var h = SHA256()
        h.update(domain)
        var w = ByteWriter(capacity: 8)
        w.write(pageCount)
        h.update(w.bytes)
        h.update(level(level(leaves)))
        return h.finalize()
    }
}
