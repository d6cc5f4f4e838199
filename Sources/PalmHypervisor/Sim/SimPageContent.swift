/// The content a sim guest writes: every page is derived from (pfn, generation), so the guest can
/// check any page on its own.
///
/// ```text
///   bytes 0..<8   pfn        bytes 8..<16  generation        bytes 16..<24 checksum
///   bytes 24..<4096  payload: splitmix64 stream seeded by mix(pfn, generation)
/// ```
/// Generation 0 is the all-zero page (never written). The checksum covers pfn, generation and payload.
public enum SimPageContent {
    @inline(__always)
    public static func mix(_ pfn: UInt64, _ generation: UInt64) -> UInt64 {
        var z = pfn &* 0x9E37_79B9_7F4A_7C15 ^ (generation &+ 0x632B_E59B_D9B4_E019)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Writes the page for (pfn, generation ≥ 1) into `page` (pageSize bytes, 8-byte aligned).
    public static func fill(_ page: UnsafeMutableRawPointer, pageSize: Int, pfn: UInt64, generation: UInt64) {
        let words = page.assumingMemoryBound(to: UInt64.self)
        var state = mix(pfn, generation)
        var sum = pfn &* 31 &+ generation
        for i in 3..<(pageSize / 8) {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            words[i] = z
            sum = (sum &* 0x100_0000_01B3) ^ z
        }
        words[0] = pfn
        words[1] = generation
        words[2] = sum
    }

    /// Writes a text-like page for (pfn, generation ≥ 1): the same header and checksum as
    /// ``fill(_:pageSize:pfn:generation:)``, with a payload of words and spaces instead of random
    /// bits — compressible, like the text and code that fill real guests' memory.
    public static func fillText(_ page: UnsafeMutableRawPointer, pageSize: Int, pfn: UInt64, generation: UInt64) {
        let bytes = page.assumingMemoryBound(to: UInt8.self)
        var state = mix(pfn, generation)
        var at = 24
        while at < pageSize {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z ^= z >> 27
            let word = vocabulary[Int(z % UInt64(vocabulary.count))]
            for b in word where at < pageSize {
                bytes[at] = b
                at += 1
            }
            if at < pageSize { bytes[at] = z & 0x700 == 0 ? 0x0A : 0x20; at += 1 }
        }
        let words = page.assumingMemoryBound(to: UInt64.self)
        var sum = pfn &* 31 &+ generation
        for i in 3..<(pageSize / 8) { sum = (sum &* 0x100_0000_01B3) ^ words[i] }
        words[0] = pfn
        words[1] = generation
        words[2] = sum
    }

    static let vocabulary: [[UInt8]] = ["the", "migration", "page", "kernel", "return", "struct", "int", "void", "if", "else",
                                        "for", "while", "memory", "guest", "xen", "palm", "static", "const", "char", "error",
                                        "0x0000", "null", "true", "false", "function", "value", "buffer", "size", "data", "log"]
        .map { Array($0.utf8) }

    public enum Check: Equatable {
        case zero
        case valid(generation: UInt64)
        case wrongPFN(found: UInt64)
        case badChecksum
    }

    /// Checks a page read back from memory.
    public static func check(_ page: UnsafeRawPointer, pageSize: Int, pfn: UInt64) -> Check {
        let words = page.assumingMemoryBound(to: UInt64.self)
        let n = pageSize / 8
        if words[0] == 0 && words[1] == 0 && words[2] == 0 {
            var acc: UInt64 = 0
            for i in 3..<n { acc |= words[i] }
            return acc == 0 ? .zero : .badChecksum
        }
        guard words[0] == pfn else { return .wrongPFN(found: words[0]) }
        var sum = pfn &* 31 &+ words[1]
        for i in 3..<n { sum = (sum &* 0x100_0000_01B3) ^ words[i] }
        return sum == words[2] ? .valid(generation: words[1]) : .badChecksum
    }
}
