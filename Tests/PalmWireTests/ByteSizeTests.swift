import PalmWire
import Testing

/// Sizes as configuration files write them and as error messages print them.
@Suite("ByteSize")
struct ByteSizeTests {
    @Test("parse reads units; format prints the largest unit that divides exactly, and parses back")
    func parseAndFormat() {
        #expect(ByteSize.parse("256K") == 256 << 10)
        #expect(ByteSize.parse("16MiB") == 16 << 20)
        #expect(ByteSize.parse("lots") == nil)
        #expect(ByteSize.format(16 << 10) == "16K")
        #expect(ByteSize.format(1 << 20) == "1M")
        #expect(ByteSize.format(3 << 30) == "3G")
        #expect(ByteSize.format(4097) == "4097")
        #expect(ByteSize.format(0) == "0")
        for v: UInt64 in [1, 1024, 1536, 16 << 20, 5 << 40] { #expect(ByteSize.parse(ByteSize.format(v)) == v) }
    }
}
