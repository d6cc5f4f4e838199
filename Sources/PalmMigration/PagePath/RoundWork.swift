import Atomics
import PalmHypervisor

/// The pages of one round, handed out to the page streams in chunks of whole bitmap words, so
/// streams that run faster take more of the round and every page goes to exactly one stream.
///
/// ``stop()`` ends the hand-out: chunks not yet claimed stay unsent, and it returns where they
/// start, so the engine can add them to the final round when it abandons a round part-way.
final class RoundWork: @unchecked Sendable {
    let round: UInt32
    let words: [UInt64]
    /// Words per claim (8 words = 512 pages).
    static let chunkWords = 8
    private let cursor = ManagedAtomic<Int>(0)

    init(round: UInt32, pages: DirtyBitmap) {
        self.round = round
        words = pages.words
    }

    /// The next chunk of words, or nil when the round is handed out (or stopped).
    func claim() -> Range<Int>? {
        let start = cursor.loadThenWrappingIncrement(by: Self.chunkWords, ordering: .relaxed)
        guard start < words.count else { return nil }
        return start..<min(start + Self.chunkWords, words.count)
    }

    /// Stops handing out chunks; returns the first word no stream has claimed.
    func stop() -> Int {
        min(cursor.loadThenWrappingIncrement(by: Int.max / 4, ordering: .relaxed), words.count)
    }

    /// Calls `body` for every page of the chunk, ascending.
    @inline(__always)
    func forEachPage(in chunk: Range<Int>, _ body: (UInt64) throws -> Void) rethrows {
        for w in chunk {
            var bits = words[w]
            while bits != 0 {
                try body(UInt64(w) << 6 | UInt64(bits.trailingZeroBitCount))
                bits &= bits - 1
            }
        }
    }
}
