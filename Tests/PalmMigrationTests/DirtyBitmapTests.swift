import PalmHypervisor
import Testing

@Suite("DirtyBitmap")
struct DirtyBitmapTests {
    @Test("iterates set pfns in ascending order and counts them")
    func iteration() {
        var b = DirtyBitmap(pageCount: 200)
        for p: UInt64 in [199, 0, 63, 64, 65, 127, 128] { b.set(p) }
        #expect(Array(b.pfns) == [0, 63, 64, 65, 127, 128, 199])
        #expect(b.count == 7)
        #expect(b.contains(64) && !b.contains(66))
        b.clear()
        #expect(Array(b.pfns).isEmpty)
    }
}
