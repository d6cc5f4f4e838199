import Testing
@testable import PalmMigration

/// The `auto` setting's decision: trials alternate raw and compressed batches, the cheaper way per
/// page of data is kept for a stretch, then both are tried again.
@Suite("Adaptive compression")
struct AdaptiveCompressionTests {
    /// Runs one trial where a raw batch costs `raw` seconds and a compressed one `packed`, for
    /// batches of 256 data pages; returns the choice.
    private func trial(_ a: inout AdaptiveCompression, raw: Double, packed: Double) -> Bool {
        var ways: [Bool] = []
        for _ in 0..<(2 * AdaptiveCompression.trialRounds) {
            let compress = a.compressNext
            ways.append(compress)
            a.record(compressed: compress, seconds: compress ? packed : raw, dataPages: 256)
        }
        #expect(ways == [false, true, false, true], "a trial alternates, raw first")
        return a.choice
    }

    /// Sends a whole stretch the chosen way; returns how many of its batches were compressed.
    private func stretch(_ a: inout AdaptiveCompression) -> Int {
        var compressed = 0
        for _ in 0..<AdaptiveCompression.stretchBatches {
            if a.compressNext { compressed += 1 }
            a.record(compressed: a.compressNext, seconds: 1, dataPages: 256)
        }
        return compressed
    }

    @Test("a link slower than the codec: compressed batches measured cheaper are kept for the stretch")
    func slowLink() {
        var a = AdaptiveCompression()
        #expect(trial(&a, raw: 0.10, packed: 0.04))
        #expect(stretch(&a) == AdaptiveCompression.stretchBatches)
    }

    @Test("a CPU slower at compressing than the link: raw is kept, only trial batches are compressed")
    func fastLink() {
        var a = AdaptiveCompression()
        #expect(!trial(&a, raw: 0.02, packed: 0.05))
        #expect(stretch(&a) == 0)
    }

    @Test("a tie goes to raw: compression must save at least 5 % to be worth its CPU")
    func tie() {
        var a = AdaptiveCompression()
        #expect(!trial(&a, raw: 0.10, packed: 0.097))
        _ = stretch(&a)
        #expect(trial(&a, raw: 0.10, packed: 0.094))
    }

    @Test("after each stretch both ways are tried again, and the choice follows the new measurements")
    func retrial() {
        var a = AdaptiveCompression()
        #expect(trial(&a, raw: 0.10, packed: 0.04))
        _ = stretch(&a)
        #expect(!trial(&a, raw: 0.02, packed: 0.05), "the link got faster: back to raw")
        #expect(stretch(&a) == 0)
    }

    @Test("batches without data pages are neither measured nor counted")
    func zeroBatches() {
        var a = AdaptiveCompression()
        a.record(compressed: false, seconds: 100, dataPages: 0)
        a.record(compressed: true, seconds: 100, dataPages: 0)
        #expect(!a.compressNext, "still the trial's first (raw) batch")
        #expect(trial(&a, raw: 0.10, packed: 0.04), "the empty batches' seconds did not count")
    }

    @Test("costs are compared per page of data, not per batch")
    func perPage() {
        var a = AdaptiveCompression()
        // Raw batches of 256 pages at 0.10 s; compressed batches of 64 pages at 0.05 s: per page
        // compressed costs twice as much although each batch took less time.
        for i in 0..<(2 * AdaptiveCompression.trialRounds) {
            let compress = a.compressNext
            #expect(compress == (i % 2 == 1))
            a.record(compressed: compress, seconds: compress ? 0.05 : 0.10, dataPages: compress ? 64 : 256)
        }
        #expect(!a.choice)
    }
}

@Suite("Compression setting")
struct CompressionSettingTests {
    @Test("each configuration name parses to its setting and prints back; auto announces lz4; anything else is refused")
    func names() {
        for name in CompressionSetting.names {
            #expect(CompressionSetting(name: name)?.description == name)
        }
        #expect(CompressionSetting(name: "auto")?.codec == .lz4)
        #expect(CompressionSetting(name: "none") == .off && CompressionSetting.off.codec == .none)
        #expect(CompressionSetting(name: "zstd") == .always(.zstd))
        #expect(CompressionSetting(name: "gzip") == nil && CompressionSetting(name: "") == nil && CompressionSetting(name: "LZ4") == nil)
    }
}
