import Foundation
import PalmHypervisor
import PalmMigration
import PalmTestSupport
import PalmWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The sim guest's memory self-check, on an image manipulated directly (no process).
@Suite("Sim guest self-check")
struct SimGuestSelfCheckTests {
    func freshImage(pages: UInt64 = 512, fill: SimFill = .random) throws -> (SimImage, SimGuestCore, String) {
        let path = "/dev/shm/palm-guest-test-\(UUID().uuidString)"
        let image = try SimImage.create(path: path, pageCount: pages, vcpus: 1, name: "t")
        image[.rate] = 1000
        image[.workingSet] = pages
        let core = try SimGuestCore(image: image)
        core.initialize(fill: fill)
        for _ in 0..<2000 { core.writeOne() }
        return (image, core, path)
    }

    @Test("a guest's own memory passes")
    func clean() throws {
        let (_, core, path) = try freshImage()
        defer { unlink(path) }
        #expect(core.verify().ok)
    }

    @Test("a realistic fill mixes zero, text-like and random pages, keeps text pages text under writes, and passes")
    func realistic() throws {
        let (image, core, path) = try freshImage(pages: 2048, fill: .realistic)
        defer { unlink(path) }
        #expect(core.verify().ok)
        let ram = try image.mapAllRAM()
        var zero = 0, text = 0, random = 0
        for pfn in 0..<2048 {
            let p = UnsafeRawBufferPointer(start: ram + pfn * 4096, count: 4096)
            if PageScan.isZero(p) { zero += 1; continue }
            // Text pages: every payload byte is a lower-case letter, digit, 'x', space or newline.
            let printable = p[24...].allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x20 || $0 == 0x0A }
            if printable { text += 1 } else { random += 1 }
        }
        // 2,000 writes turned some zero pages into written ones; the classes stay in proportion.
        #expect(zero > 200 && text > 600 && random > 400, "zero \(zero), text \(text), random \(random)")
    }

    @Test("a corrupted byte in one page is found, with its pfn")
    func corruption() throws {
        let (image, core, path) = try freshImage()
        defer { unlink(path) }
        let ram = try image.mapAllRAM()
        (ram + 77 * 4096 + 1000).storeBytes(of: 0x5A ^ (ram + 77 * 4096 + 1000).load(as: UInt8.self), as: UInt8.self)
        let v = core.verify()
        #expect(!v.ok)
        #expect(v.badPages == 1)
        #expect(v.firstBadPFN == 77)
    }

    @Test("a stale page (an older, internally valid generation) breaks the accumulators")
    func stale() throws {
        let (image, core, path) = try freshImage()
        defer { unlink(path) }
        let ram = try image.mapAllRAM()
        // Find a page written more than once and put its previous generation back.
        let pfn = (0..<UInt64(512)).first { (ram + Int($0) * 4096).load(fromByteOffset: 8, as: UInt64.self) > 1 }!
        let gen = (ram + Int(pfn) * 4096).load(fromByteOffset: 8, as: UInt64.self)
        SimPageContent.fill(ram + Int(pfn) * 4096, pageSize: 4096, pfn: pfn, generation: gen - 1)
        let v = core.verify()
        #expect(v.badPages == 0)
        #expect(!v.sumMatches)
        #expect(!v.ok)
    }

    @Test("a write frozen between its steps is completed on resume (intent replay)")
    func intentReplay() throws {
        let (image, core, path) = try freshImage()
        defer { unlink(path) }
        // Publish an intent for page 5 by hand, as if frozen right after step 1.
        let ram = try image.mapAllRAM()
        let old = (ram + 5 * 4096).load(fromByteOffset: 8, as: UInt64.self)
        image[.intentPfn] = 5
        image[.intentGen] = old + 1
        image[.intentSum] = image[.genSum] &+ 1
        image[.intentHash] = image[.genHash] &- SimPageContent.mix(5, old) &+ SimPageContent.mix(5, old + 1)
        let writes = image[.writes]
        image[.intentSeq] = writes + 1
        core.recover()
        #expect((ram + 5 * 4096).load(fromByteOffset: 8, as: UInt64.self) == old + 1, "the page carries the new generation")
        #expect(image[.writes] == writes + 1)
        #expect(core.verify().ok)
        core.recover()  // idempotent: nothing left to replay
        #expect(image[.writes] == writes + 1)
        #expect(core.verify().ok)
    }

    @Test("the image digest changes when any page changes")
    func digest() throws {
        let (image, _, path) = try freshImage()
        defer { unlink(path) }
        let d1 = try SimCluster.digest(of: image)
        let ram = try image.mapAllRAM()
        (ram + 3 * 4096).storeBytes(of: UInt8(1), toByteOffset: 4095, as: UInt8.self)
        #expect(try SimCluster.digest(of: image) != d1)
    }
}
