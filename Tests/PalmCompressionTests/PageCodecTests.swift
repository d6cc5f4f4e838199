import PalmCompression
import PalmHypervisor
import PalmWire
import Testing

/// Page data like a realistic sim guest's: text-like and random pages, 64 of them.
func realisticPages(_ count: Int = 64) -> [UInt8] {
    var data = [UInt8](repeating: 0, count: count * 4096)
    data.withUnsafeMutableBytes { raw in
        for i in 0..<count {
            let page = raw.baseAddress! + i * 4096
            if i % 3 == 0 {
                SimPageContent.fill(page, pageSize: 4096, pfn: UInt64(i), generation: 1)
            } else {
                SimPageContent.fillText(page, pageSize: 4096, pfn: UInt64(i), generation: 1)
            }
        }
    }
    return data
}

@Suite("MEMORY batch compression")
struct PageCodecTests {
    @Test("a batch of text-like pages shrinks and decompresses to exactly the same bytes", arguments: [PageCompression.lz4, .zstd])
    func roundTrip(_ codec: PageCompression) throws {
        let input = realisticPages()
        let c = PageCodec(codec)
        var packed = [UInt8](repeating: 0, count: input.count)
        let n = try #require(input.withUnsafeBytes { i in packed.withUnsafeMutableBytes { c.compress(i, into: $0) } })
        #expect(n < input.count * 3 / 4, "\(codec) shrank \(input.count) bytes only to \(n)")
        var output = [UInt8](repeating: 0xEE, count: input.count)
        try packed[0..<n].withUnsafeBytes { p in try output.withUnsafeMutableBytes { try c.decompress(p, into: $0) } }
        #expect(output == input)
    }

    @Test("an incompressible batch is reported as not shrinking (it travels raw)", arguments: [PageCompression.lz4, .zstd])
    func incompressible(_ codec: PageCompression) {
        var input = [UInt8](repeating: 0, count: 16 * 4096)
        input.withUnsafeMutableBytes { raw in
            for i in 0..<16 { SimPageContent.fill(raw.baseAddress! + i * 4096, pageSize: 4096, pfn: UInt64(i), generation: 3) }
        }
        var out = [UInt8](repeating: 0, count: input.count)
        #expect(input.withUnsafeBytes { i in out.withUnsafeMutableBytes { PageCodec(codec).compress(i, into: $0) } } == nil)
    }

    @Test("a corrupted, truncated or mis-sized compressed batch is a named error, never a crash or an overrun",
          arguments: [PageCompression.lz4, .zstd])
    func corrupt(_ codec: PageCompression) throws {
        let input = realisticPages(16)
        let c = PageCodec(codec)
        var packed = [UInt8](repeating: 0, count: input.count)
        let n = try #require(input.withUnsafeBytes { i in packed.withUnsafeMutableBytes { c.compress(i, into: $0) } })
        let good = Array(packed[0..<n])
        func decode(_ bytes: [UInt8], size: Int) throws {
            // A guard page's worth of sentinel after the output shows nothing is written past it.
            var output = [UInt8](repeating: 0xEE, count: size + 4096)
            defer { #expect(output[size...].allSatisfy { $0 == 0xEE }, "wrote past the batch") }
            try bytes.withUnsafeBytes { p in
                try output.withUnsafeMutableBytes { o in try c.decompress(p, into: UnsafeMutableRawBufferPointer(rebasing: o[0..<size])) }
            }
        }
        var flipped = good
        for i in stride(from: 0, to: flipped.count, by: max(1, flipped.count / 40)) { flipped[i] ^= 0xA5 }
        for (bytes, size) in [(flipped, input.count), (Array(good.prefix(good.count / 2)), input.count),
                              (good, input.count - 4096), (good, input.count + 4096), ([UInt8](repeating: 0xFF, count: 64), input.count)] {
            #expect(throws: PageCodecError.self) { try decode(bytes, size: size) }
        }
    }
}
