@testable import PalmXenDriver
import PalmHypervisor
import CXenShims
import Dispatch
import PalmSupport
import PalmWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Reads back what XenRestoreStream wrote, field by field, as libxl and libxenguest parse it.
private struct StreamReader {
    let bytes: [UInt8]
    var at = 0
    mutating func take(_ n: Int) -> [UInt8] { defer { at += n }; return Array(bytes[at..<at + n]) }
    mutating func le32() -> UInt32 { take(4).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) } }
    mutating func le64() -> UInt64 { take(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * $1.offset) } }
    mutating func le16() -> UInt16 { take(2).enumerated().reduce(0) { $0 | UInt16($1.element) << (8 * $1.offset) } }
    mutating func be32() -> UInt32 { take(4).reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func be64() -> UInt64 { take(8).reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func be16() -> UInt16 { take(2).reduce(0) { $0 << 8 | UInt16($1) } }
    /// type, body; checks the 8-byte padding is zero.
    mutating func record() -> (UInt32, [UInt8]) {
        let type = le32(), length = Int(le32())
        let body = take(length)
        let pad = take((8 - length % 8) % 8)
        #expect(pad.allSatisfy { $0 == 0 })
        return (type, body)
    }
}

private func written(_ body: (XenRestoreStream) throws -> Void) throws -> [UInt8] {
    var template = Array("/tmp/palm-xenstream.XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    let path = String(nulTerminated: template)
    defer { unlink(path) }
    let stream = XenRestoreStream(fd: dup(fd), pageSize: 4096)
    try body(stream)
    stream.close()
    let size = Int(lseek(fd, 0, SEEK_END))
    lseek(fd, 0, SEEK_SET)
    var bytes = [UInt8](repeating: 0, count: size)
    #expect(read(fd, &bytes, size) == size)
    close(fd)
    return bytes
}

@Suite("Xen restore stream (what libxl_domain_create_restore reads)")
struct XenStreamTests {
    let state = XenDomainState(tscMode: 1, tscNanoseconds: 123_456_789, tscKHz: 2_400_000, tscIncarnation: 3,
                               hvmContext: Array(repeating: 0xAB, count: 1030), params: [(1, 0xfeffc), (17, 0xfeffd)])

    @Test("libxl header, libxc headers, static data, pages, hand-off records and both ENDs, in order and aligned")
    func layoutOfTheStream() throws {
        var page = [UInt8](repeating: 0, count: 4096)
        for i in page.indices { page[i] = UInt8(i % 251) }
        let bytes = try written { s in
            try s.writeHeaders(xenMajor: 4, xenMinor: 17, cpuid: Array(repeating: 1, count: 48), msrs: Array(repeating: 2, count: 16))
            try page.withUnsafeBytes { try s.page(gpfn: 0x10, data: $0) }
            try s.zeroPage(gpfn: 0xfeffc, populated: true)
            try s.zeroPage(gpfn: 0x11, populated: false)
            try s.writeTail(state)
        }
        var r = StreamReader(bytes: bytes)
        #expect(r.be64() == 0x4c69_6278_6c46_6d74)   // "LibxlFmt"
        #expect(r.be32() == 2 && r.be32() == 0)
        #expect(r.record() == (1, []))               // LIBXC_CONTEXT
        #expect(r.be64() == UInt64.max && r.be32() == 0x5845_4E46 && r.be32() == 3)
        #expect(r.be16() == 0 && r.be16() == 0 && r.be32() == 0)
        #expect(r.le32() == 2 && r.le16() == 12 && r.le16() == 0 && r.le32() == 4 && r.le32() == 17)

        var types: [UInt32] = []
        var pageData: [UInt8] = []
        while true {
            let (type, body) = r.record()
            types.append(type)
            if type == 0x01 { pageData = body }
            if type == 0x08 {
                var b = StreamReader(bytes: body)
                #expect(b.le32() == 1 && b.le32() == 2_400_000 && b.le64() == 123_456_789 && b.le32() == 3 && b.le32() == 0)
            }
            if type == 0x09 { #expect(body == state.hvmContext) }
            if type == 0x0a {
                var b = StreamReader(bytes: body)
                #expect(b.le32() == 2 && b.le32() == 0)
                #expect(b.le64() == 1 && b.le64() == 0xfeffc && b.le64() == 17 && b.le64() == 0xfeffd)
            }
            if type == 0 { break }
        }
        #expect(types == [0x11, 0x12, 0x10, 0x01, 0x08, 0x09, 0x0a, 0x00])
        var p = StreamReader(bytes: pageData)
        #expect(p.le32() == 3 && p.le32() == 0)
        #expect(p.le64() == 0x10 && p.le64() == 0xfeffc)   // type NOTAB: no bits above the pfn
        #expect(p.le64() == 0xE000_0000_0000_0011)         // XALLOC: populate, no data
        #expect(p.take(4096) == page)
        #expect(p.take(4096).allSatisfy { $0 == 0 })       // the populated zero frame is overwritten
        #expect(p.at == pageData.count, "no data for the XALLOC frame")
        #expect(r.record() == (0, []))                      // libxl END
        #expect(r.at == bytes.count)
    }

    @Test("pages go out in PAGE_DATA records of at most 512 frames")
    func batching() throws {
        let zero = [UInt8](repeating: 0, count: 4096)
        let bytes = try written { s in
            try s.writeHeaders(xenMajor: 4, xenMinor: 17, cpuid: [], msrs: [])
            for g in 0..<UInt64(1100) { try zero.withUnsafeBytes { try s.page(gpfn: g, data: $0) } }
            try s.flush()
        }
        // Skip to the first record after the libxc domain header.
        var r = StreamReader(bytes: bytes)
        r.at = 16 + 8 + 24 + 16   // libxl header, LIBXC_CONTEXT, image header, domain header
        #expect(r.record().0 == 0x10)   // no CPU policy records when there is none
        var counts: [UInt32] = []
        while r.at < bytes.count {
            let (type, body) = r.record()
            #expect(type == 0x01)
            var b = StreamReader(bytes: body)
            counts.append(b.le32())
        }
        #expect(counts == [512, 512, 76])
    }

    @Test("a zero page's first time is XALLOC without data; once carried, a zero page is a page of zeroes (an earlier round's data is overwritten)")
    func zeroPagesAllocateOnlyOnce() throws {
        let layout = XenPageLayout(ranges: [.init(first: 0x100, count: 4)])   // palm pages 0–3 at gpfns 0x100–0x103
        var carried = DirtyBitmap(pageCount: layout.count)
        let data = [UInt8](repeating: 7, count: 4096)
        func batch(_ pfns: [UInt64], zero: [Bool]) throws -> (XenRestoreStream) throws -> Void {
            { s in
                try pfns.withUnsafeBufferPointer { p in
                    try zero.withUnsafeBufferPointer { z in
                        try data.withUnsafeBytes { d in
                            let pages = IncomingPages(pfns: p, zero: z, data: UnsafeRawBufferPointer(rebasing: d[0..<(4096 * z.filter { !$0 }.count)]), pageSize: 4096)
                            try s.pages(pages, layout: layout, carried: &carried)
                        }
                    }
                }
                try s.flush()
            }
        }
        func entries(_ bytes: [UInt8]) -> (pfns: [UInt64], dataPages: Int) {
            var r = StreamReader(bytes: bytes)    // no headers were written: one PAGE_DATA record
            let (type, body) = r.record()
            #expect(type == 0x01 && r.at == bytes.count)
            var b = StreamReader(bytes: body)
            let n = Int(b.le32())
            _ = b.le32()
            let pfns = (0..<n).map { _ in b.le64() }
            return (pfns, (body.count - b.at) / 4096)
        }
        // Round 0: page 0 data, pages 1 and 2 zero (first time: XALLOC), page 3 absent.
        let first = entries(try written(batch([0, 1, 2], zero: [false, true, true])))
        #expect(first.pfns == [0x100, 0xE000_0000_0000_0101, 0xE000_0000_0000_0102])
        #expect(first.dataPages == 1)
        // Round 1: page 0 became zero, page 1 zero again, page 3 zero for the first time.
        let second = entries(try written(batch([0, 1, 3], zero: [true, true, true])))
        #expect(second.pfns == [0x100, 0x101, 0xE000_0000_0000_0103])
        #expect(second.dataPages == 2)
        #expect(carried.count == 4)
    }

    @Test("a page of the wrong size is refused")
    func wrongPageSize() throws {
        _ = try written { s in
            let short = [UInt8](repeating: 1, count: 100)
            #expect(throws: HypervisorError.self) { try short.withUnsafeBytes { try s.page(gpfn: 1, data: $0) } }
        }
    }
}

/// A pipe whose read end is held (or drained) while a stream writes into the other end.
private final class RestorePipe: @unchecked Sendable {
    var drained = 0
    let readEnd: Int32
    let writeEnd: Int32
    init() {
        var fds: [Int32] = [0, 0]
        // Close-on-exec from birth: a child another test forks meanwhile (postgres held one for
        // good) must not keep the write end open, or the reader never sees the end.
        precondition(palm_pipe_cloexec(&fds) == 0)
        readEnd = fds[0]
        writeEnd = fds[1]
    }
    deinit { close(readEnd) }
}

@Suite("Xen restore stream: writes into the libxl restore are bounded")
struct XenStreamBoundTests {
    let page = [UInt8](repeating: 7, count: 4096)

    @Test("a reader that stops reading fails the write after the stall timeout, naming the tool")
    func stalledReader() throws {
        let p = RestorePipe()
        let stream = XenRestoreStream(fd: p.writeEnd, pageSize: 4096, stallTimeout: 0.3)
        defer { stream.close() }
        try stream.writeHeaders(xenMajor: 4, xenMinor: 17, cpuid: [], msrs: [])
        // 512 pages (2 MiB) cannot fit a pipe's buffer: the batch write has to wait for a reader.
        #expect(throws: HypervisorError.toolStalled(tool: "libxl_domain_create_restore", seconds: 0.3)) {
            for g in 0..<UInt64(512) { try page.withUnsafeBytes { try stream.page(gpfn: g, data: $0) } }
        }
    }

    @Test("a reader that has exited fails a waiting write without waiting out the stall timeout")
    func deadReader() throws {
        let p = RestorePipe()
        let stream = XenRestoreStream(fd: p.writeEnd, pageSize: 4096, stallTimeout: 3600, readerAlive: { false })
        defer { stream.close() }
        do {
            for g in 0..<UInt64(512) { try page.withUnsafeBytes { try stream.page(gpfn: g, data: $0) } }
            Issue.record("the write into a full pipe with no live reader returned")
        } catch let HypervisorError.guestFailed(message) {
            #expect(message.contains("xl restore"))
        }
    }

    @Test("a reader that keeps reading gets every byte although the pipe fills many times over")
    func liveReader() throws {
        let p = RestorePipe()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = read(p.readEnd, &buf, buf.count)
                if n <= 0 { break }
                p.drained += n
            }
            done.signal()
        }
        let stream = XenRestoreStream(fd: p.writeEnd, pageSize: 4096, stallTimeout: 30)
        for g in 0..<UInt64(2048) { try page.withUnsafeBytes { try stream.page(gpfn: g, data: $0) } }
        try stream.flush()
        stream.close()
        done.wait()
        // 4 records of 512 frames: header (8 + 8) + 512 pfns + 512 pages each.
        #expect(p.drained == 4 * (16 + 512 * 8 + 512 * 4096))
    }
}

@Suite("Xen platform description, state and page layout (wire input)")
struct XenWireInputTests {
    let layout = XenPageLayout(populated: Array(0..<UInt64(0xa0)) + Array(0x100..<UInt64(0x8000)) + [0xfeff8, 0xfeff9, 0xfeffc])

    @Test("the layout numbers populated frames densely and maps both ways")
    func layoutMapping() {
        #expect(layout.ranges.count == 4)
        #expect(layout.count == 0xa0 + 0x7f00 + 3)
        #expect(layout.gpfn(0) == 0 && layout.gpfn(0x9f) == 0x9f && layout.gpfn(0xa0) == 0x100)
        #expect(layout.gpfn(layout.count - 1) == 0xfeffc && layout.gpfn(layout.count) == nil)
        #expect(layout.index(0xa0) == nil && layout.index(0xfeffa) == nil && layout.index(0xfffff) == nil)
        for i in stride(from: UInt64(0), to: layout.count, by: 97) { #expect(layout.index(layout.gpfn(i)!) == i) }
    }

    @Test("platform description and state survive the wire")
    func roundTrip() throws {
        let p = XenPlatformConfig(layout: layout, configJSON: Array("{\"c_info\":{}}".utf8), cpuid: Array(repeating: 7, count: 48),
                                  msrs: Array(repeating: 9, count: 32), xenMajor: 4, xenMinor: 17)
        #expect(try XenPlatformConfig.decode(p.encode()) == p)
        let s = XenDomainState(tscMode: 0, tscNanoseconds: 5, tscKHz: 6, tscIncarnation: 7, hvmContext: [1, 2, 3], params: [(1, 2), (38, 4)])
        #expect(try XenDomainState.decode(s.encode()) == s)
        var early = p
        early.provisionalState = s
        #expect(try XenPlatformConfig.decode(early.encode()) == early)
        // A version-1 source (no provisional state field): read, and built at the end.
        let v1 = [UInt8(1)] + p.encode().dropFirst().dropLast(4)
        #expect(try XenPlatformConfig.decode(Array(v1)) == p)
        #expect(try XenPlatformConfig.decode(Array(v1)).provisionalState == nil)
    }

    @Test("malformed platform descriptions and states are refused with a named error")
    func malformed() throws {
        let good = XenPlatformConfig(layout: layout, configJSON: [], cpuid: [], msrs: [], xenMajor: 4, xenMinor: 17).encode()
        var unsorted = ByteWriter()
        unsorted.write(UInt8(1)); unsorted.write(UInt32(4)); unsorted.write(UInt32(17))
        unsorted.write(UInt32(2)); unsorted.write(UInt64(100)); unsorted.write(UInt64(10)); unsorted.write(UInt64(50)); unsorted.write(UInt64(1))
        unsorted.write(UInt32(0)); unsorted.write(UInt32(0)); unsorted.write(UInt32(0))
        var empty = ByteWriter()
        empty.write(UInt8(1)); empty.write(UInt32(4)); empty.write(UInt32(17))
        empty.write(UInt32(1)); empty.write(UInt64(100)); empty.write(UInt64(0))
        empty.write(UInt32(0)); empty.write(UInt32(0)); empty.write(UInt32(0))
        var badPolicy = ByteWriter()
        badPolicy.write(UInt8(1)); badPolicy.write(UInt32(4)); badPolicy.write(UInt32(17)); badPolicy.write(UInt32(0))
        badPolicy.write(UInt32(0)); badPolicy.write(lengthPrefixed: [UInt8](repeating: 0, count: 25)); badPolicy.write(UInt32(0))
        // A provisional state that does not decode: checked when CONFIG arrives, not when the domain is built.
        let badState = Array(good.dropLast(4)) + [0, 0, 0, 3, 1, 2, 3]
        for bytes in [[], [3] + good.dropFirst(), good + [0], badState, Array(good.dropLast()), unsorted.bytes, empty.bytes, badPolicy.bytes] {
            #expect(throws: (any Error).self) { try XenPlatformConfig.decode(bytes) }
        }
        let s = XenDomainState(tscMode: 0, tscNanoseconds: 0, tscKHz: 0, tscIncarnation: 0, hvmContext: [1], params: [(1, 2)]).encode()
        var foreignParam = s
        foreignParam[foreignParam.count - 12] = 0xFF   // index 0xFF000001: not one a migration carries
        let noContext = XenDomainState(tscMode: 0, tscNanoseconds: 0, tscKHz: 0, tscIncarnation: 0, hvmContext: [], params: []).encode()
        for bytes in [[], [9] + s.dropFirst(), s + [1], foreignParam, noContext] {
            #expect(throws: (any Error).self) { try XenDomainState.decode(bytes) }
        }
    }
}
