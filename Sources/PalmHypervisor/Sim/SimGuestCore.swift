#if canImport(Glibc)
import Glibc
#endif

/// The guest side of a sim VM: its workload and its memory self-check. Runs inside the guest
/// process (palm-simguest), never inside an agent.
///
/// Each write is a small transaction that survives being frozen (SIGSTOP, a migration) between
/// any two instructions: the guest first publishes an intent (pfn, new generation, new
/// accumulators) in the header, then writes the page, then commits the accumulators, then sets
/// the page's dirty bit (release). A guest resumed anywhere first re-applies a published intent
/// that was not committed — rewriting a page from (pfn, generation) is idempotent.
///
/// The self-check reads every page, checks pfn and checksum, and recomputes Σ generation and
/// Σ mix(pfn, generation), which must equal the header's: a lost page fails its checksum or pfn,
/// a stale page (an older generation) breaks the sums.
public final class SimGuestCore {
    public let image: SimImage
    let ram: UnsafeMutableRawPointer
    let pageCount: UInt64
    let pageSize = SimLayout.pageSize

    public init(image: SimImage) throws {
        self.image = image
        ram = try image.mapAllRAM()
        pageCount = image.layout.pageCount
    }

    @inline(__always)
    func page(_ pfn: UInt64) -> UnsafeMutableRawPointer { ram + Int(pfn) * pageSize }

    /// Writes page `pfn` at `generation`: text-like where a realistic guest keeps text, else random.
    func write(_ pfn: UInt64, generation: UInt64) {
        if SimFill(rawValue: image[.fill])?.pageClass(pfn) == .text {
            SimPageContent.fillText(page(pfn), pageSize: pageSize, pfn: pfn, generation: generation)
        } else {
            SimPageContent.fill(page(pfn), pageSize: pageSize, pfn: pfn, generation: generation)
        }
    }

    /// Fills memory as `fill` says: generation 1 (random-looking or text-like) or zero pages.
    public func initialize(fill: SimFill) {
        image[.fill] = fill.rawValue
        var sum: UInt64 = 0, hash: UInt64 = 0
        for pfn in 0..<pageCount {
            if fill.pageClass(pfn) != .zero {
                write(pfn, generation: 1)
                sum &+= 1
                hash &+= SimPageContent.mix(pfn, 1)
            } else {
                hash &+= SimPageContent.mix(pfn, 0)
            }
        }
        image[.genSum] = sum
        image[.genHash] = hash
        image[.writes] = 0
        image[.intentSeq] = 0
        if image[.rng] == 0 { image[.rng] = 0x2545_F491_4F6C_DD1D ^ UInt64(pageCount) }
    }

    /// Completes a write that was published but not committed when the guest was frozen.
    public func recover() {
        let seq = image[.intentSeq]
        guard seq != 0, seq == image[.writes] &+ 1 else { return }
        let pfn = image[.intentPfn]
        guard pfn < pageCount else { return }
        write(pfn, generation: image[.intentGen])
        image[.genSum] = image[.intentSum]
        image[.genHash] = image[.intentHash]
        image[.writes] = seq
        image.markDirty(pfn)
    }

    private func nextRandom() -> UInt64 {
        var x = image[.rng]
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        image[.rng] = x
        return x
    }

    private func pickPage() -> UInt64 {
        let ws = max(1, min(image[.workingSet] == 0 ? pageCount : image[.workingSet], pageCount))
        switch SimPattern(rawValue: image[.pattern]) ?? .uniform {
        case .uniform:
            return nextRandom() % ws
        case .hotSet:
            let r = nextRandom()
            return (r >> 32) % 100 < image[.hotPercent] ? r % ws : r % pageCount
        case .sequential:
            let c = (image[.cursor] &+ 1) % ws
            image[.cursor] = c
            return c
        }
    }

    /// One write transaction of the workload.
    public func writeOne() {
        let pfn = pickPage()
        let p = page(pfn)
        let old: UInt64
        switch SimPageContent.check(p, pageSize: pageSize, pfn: pfn) {
        case .zero: old = 0
        case let .valid(g): old = g
        default: old = p.load(fromByteOffset: 8, as: UInt64.self)  // a broken page: keep counting from it
        }
        let new = old &+ 1
        let seq = image[.writes] &+ 1
        image[.intentPfn] = pfn
        image[.intentGen] = new
        image[.intentSum] = image[.genSum] &+ 1
        image[.intentHash] = image[.genHash] &- SimPageContent.mix(pfn, old) &+ SimPageContent.mix(pfn, new)
        atomicFence()
        image[.intentSeq] = seq
        atomicFence()
        write(pfn, generation: new)
        image[.genSum] = image[.intentSum]
        image[.genHash] = image[.intentHash]
        atomicFence()
        image[.writes] = seq
        image.markDirty(pfn)
    }

    /// The outcome of a self-check.
    public struct Verdict: Equatable, Sendable, CustomStringConvertible {
        public var pages: UInt64
        public var badPages: UInt64
        public var sumMatches: Bool
        public var hashMatches: Bool
        public var firstBadPFN: UInt64?
        public var ok: Bool { badPages == 0 && sumMatches && hashMatches }
        public var description: String {
            ok ? "memory OK (\(pages) pages)"
               : "memory CORRUPT: \(badPages) bad pages\(firstBadPFN.map { " (first pfn \($0))" } ?? ""), generation sum \(sumMatches ? "ok" : "MISMATCH (stale or lost page)"), hash \(hashMatches ? "ok" : "MISMATCH")"
        }
    }

    /// Reads all of memory and checks it against the header.
    public func verify() -> Verdict {
        var sum: UInt64 = 0, hash: UInt64 = 0, bad: UInt64 = 0
        var firstBad: UInt64?
        for pfn in 0..<pageCount {
            switch SimPageContent.check(page(pfn), pageSize: pageSize, pfn: pfn) {
            case .zero:
                hash &+= SimPageContent.mix(pfn, 0)
            case let .valid(g):
                sum &+= g
                hash &+= SimPageContent.mix(pfn, g)
            case .wrongPFN, .badChecksum:
                bad += 1
                if firstBad == nil { firstBad = pfn }
            }
        }
        return Verdict(pages: pageCount, badPages: bad, sumMatches: sum == image[.genSum],
                       hashMatches: hash == image[.genHash], firstBadPFN: firstBad)
    }

    /// Runs a requested self-check and records it in the header.
    @discardableResult
    public func serviceVerifyRequest() -> Verdict? {
        let request = image[.verifyRequest]
        guard request != image[.verifyDone] else { return nil }
        let verdict = verify()
        image[.lastBadPages] = verdict.badPages
        if !verdict.ok { image[.verifyFailures] &+= 1 }
        atomicFence()
        image[.verifyDone] = request
        return verdict
    }

    private func atomicFence() {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }
}

import Atomics
