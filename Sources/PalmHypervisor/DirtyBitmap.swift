/// A set of page frame numbers as 64-bit words, one bit per page. Iteration is in ascending pfn
/// order, which is the order drivers map and the receiver writes.
public struct DirtyBitmap: Sendable {
    public private(set) var words: [UInt64]
    public let pageCount: UInt64

    public init(pageCount: UInt64) {
        self.pageCount = pageCount
        words = [UInt64](repeating: 0, count: Int((pageCount + 63) / 64))
    }

    /// Every page of a VM (round 0, stop-and-copy mode).
    public static func all(pageCount: UInt64) -> DirtyBitmap {
        var b = DirtyBitmap(pageCount: pageCount)
        for i in b.words.indices { b.words[i] = ~0 }
        if pageCount % 64 != 0, !b.words.isEmpty { b.words[b.words.count - 1] = (1 << (pageCount % 64)) - 1 }
        return b
    }

    /// ORs `other`'s words from `start` on into this bitmap (both of the same VM).
    public mutating func formUnion(_ other: [UInt64], from start: Int) {
        for i in start..<min(other.count, words.count) { words[i] |= other[i] }
    }

    public mutating func clear() {
        for i in words.indices { words[i] = 0 }
    }

    public mutating func set(_ pfn: UInt64) {
        words[Int(pfn >> 6)] |= 1 << (pfn & 63)
    }

    public func contains(_ pfn: UInt64) -> Bool {
        words[Int(pfn >> 6)] & (1 << (pfn & 63)) != 0
    }

    /// ORs a word into position `index` (drivers fill the bitmap word by word).
    public mutating func merge(word: UInt64, at index: Int) {
        words[index] |= word
    }

    public var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Words with at least one page set: the 64-page groups the set touches.
    public var nonzeroWords: Int { words.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }

    /// All set pfns, ascending.
    public var pfns: PFNSequence { PFNSequence(words: words) }

    public struct PFNSequence: Sequence {
        let words: [UInt64]
        public func makeIterator() -> Iterator { Iterator(words: words) }

        public struct Iterator: IteratorProtocol {
            let words: [UInt64]
            var index = 0
            var current: UInt64

            init(words: [UInt64]) {
                self.words = words
                current = words.first ?? 0
            }

            public mutating func next() -> UInt64? {
                while current == 0 {
                    index += 1
                    guard index < words.count else { return nil }
                    current = words[index]
                }
                let bit = UInt64(current.trailingZeroBitCount)
                current &= current - 1
                return UInt64(index) << 6 | bit
            }
        }
    }
}
