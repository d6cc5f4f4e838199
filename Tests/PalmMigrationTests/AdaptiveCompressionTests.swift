import Testing
@testable import PalmMigration

/// The `auto` setting's decision: trials alternate raw and compressed batches; compression is kept
/// for a stretch when the time it takes per byte is less than the writing time it saves.
@Suite("Adaptive compression")
struct AdaptiveCompressionTests {
    static let batch = 256 * 4096

    /// A trial in which writing costs `write` seconds per wire byte, compressing `compress`
    /// seconds per data byte, and compression keeps `kept` of the bytes; returns the choice.
    private func trial(_ a: inout AdaptiveCompression, write: Double, compress: Double, kept: Double) -> Bool {
        var ways: [Bool] = []
        for _ in 0..<(2 * AdaptiveCompression.trialRounds) {
            let c = a.compressNext
            ways.append(c)
            let wire = c ? Int(Double(Self.batch) * kept) : Self.batch
            a.record(compressed: c, .init(dataBytes: Self.batch, wireBytes: wire,
                                          compressSeconds: c ? compress * Double(Self.batch) : 0, writeSeconds: write * Double(wire)))
        }
        #expect(ways == [false, true, false, true], "a trial alternates, raw first")
        return a.choice
    }

    /// Sends a whole stretch the chosen way; returns how many of its batches were compressed.
    private func stretch(_ a: inout AdaptiveCompression) -> Int {
        var compressed = 0
        for _ in 0..<AdaptiveCompression.stretchBatches {
            let c = a.compressNext
            if c { compressed += 1 }
            a.record(compressed: c, .init(dataBytes: Self.batch, wireBytes: Self.batch, compressSeconds: 0, writeSeconds: 1))
        }
        return compressed
    }

    @Test("a slow link (1 Gb/s: 8 ns per byte) and lz4 at 1.4 ns per byte keeping half: compressed for the whole stretch")
    func slowLink() {
        var a = AdaptiveCompression()
        #expect(trial(&a, write: 8e-9, compress: 1.4e-9, kept: 0.5))
        #expect(stretch(&a) == AdaptiveCompression.stretchBatches)
    }

    @Test("a fast link with AES-NI (2 ns per byte written) and the same lz4: raw, only trial batches are compressed")
    func fastLink() {
        var a = AdaptiveCompression()
        #expect(!trial(&a, write: 2e-9, compress: 1.4e-9, kept: 0.5))
        #expect(stretch(&a) == 0)
    }

    @Test("encryption dear for the CPU (emulated: 100 ns per byte written): compressed")
    func dearCipher() {
        var a = AdaptiveCompression()
        #expect(trial(&a, write: 100e-9, compress: 10e-9, kept: 0.35))
    }

    @Test("incompressible pages (nothing saved) stay raw however slow the link")
    func incompressible() {
        var a = AdaptiveCompression()
        #expect(!trial(&a, write: 1e-6, compress: 1e-10, kept: 1.0))
    }

    @Test("a near tie goes to raw: compression must save its cost with a 10 % margin")
    func tie() {
        var a = AdaptiveCompression()
        // Saves 0.5 × 4 = 2 ns per byte; costs 1.9: more than 90 % of the saving.
        #expect(!trial(&a, write: 4e-9, compress: 1.9e-9, kept: 0.5))
        _ = stretch(&a)
        #expect(trial(&a, write: 4e-9, compress: 1.7e-9, kept: 0.5))
    }

    @Test("after each stretch both ways are tried again, and the choice follows the new measurements")
    func retrial() {
        var a = AdaptiveCompression()
        #expect(trial(&a, write: 8e-9, compress: 1.4e-9, kept: 0.5))
        _ = stretch(&a)
        #expect(!trial(&a, write: 1e-9, compress: 1.4e-9, kept: 0.5), "the link got faster: back to raw")
        #expect(stretch(&a) == 0)
    }

    @Test("batches without data pages are neither measured nor counted")
    func zeroBatches() {
        var a = AdaptiveCompression()
        a.record(compressed: false, .init(dataBytes: 0, wireBytes: 100, compressSeconds: 0, writeSeconds: 100))
        a.record(compressed: true, .init(dataBytes: 0, wireBytes: 100, compressSeconds: 100, writeSeconds: 100))
        #expect(!a.compressNext, "still the trial's first (raw) batch")
        #expect(trial(&a, write: 8e-9, compress: 1.4e-9, kept: 0.5), "the empty batches' seconds did not count")
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
