import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// A mapping of a sim VM image file. The header and dirty bitmap are always mapped; RAM is
/// mapped whole by the guest (`mapAllRAM`) and never by an agent, which copies pages in and out
/// with positioned reads and writes (`readPages`, `writePages`) — thread-safe, no page faults, no
/// mapping to bound, and a full tmpfs is an ENOSPC error rather than a SIGBUS.
public final class SimImage {
    public let path: String
    public let layout: SimLayout
    let fd: Int32
    let meta: UnsafeMutableRawPointer      // header + bitmap
    let metaLength: Int
    private var ram: UnsafeMutableRawPointer?

    /// Creates a new image file of `pageCount` pages (sparse: untouched pages cost nothing).
    public static func create(path: String, pageCount: UInt64, vcpus: UInt32, name: String) throws -> SimImage {
        let layout = SimLayout(pageCount: pageCount)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST { throw HypervisorError.vmExists(name) }
            throw HypervisorError.systemCall(call: "open(\(path))", errno: errno)
        }
        guard ftruncate(fd, off_t(layout.fileSize)) == 0 else {
            let e = errno
            close(fd)
            unlink(path)
            throw HypervisorError.systemCall(call: "ftruncate", errno: e)
        }
        let image = try SimImage(fd: fd, path: path, layout: layout)
        image[.magic] = SimLayout.magic
        image[.version] = SimLayout.version
        image[.pageCount] = pageCount
        image[.pageSize] = UInt64(SimLayout.pageSize)
        image[.vcpus] = UInt64(vcpus)
        image.name = name
        return image
    }

    /// Opens an existing image and validates its header.
    public static func open(path: String) throws -> SimImage {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw HypervisorError.noSuchVM(path) }
            throw HypervisorError.systemCall(call: "open(\(path))", errno: errno)
        }
        var header = [UInt64](repeating: 0, count: 5)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n == 40, header[0] == SimLayout.magic, header[1] == SimLayout.version,
              header[3] == UInt64(SimLayout.pageSize), header[2] > 0, header[2] < 1 << 32 else {
            close(fd)
            throw HypervisorError.corruptImage("\(path): not a palm sim image")
        }
        let layout = SimLayout(pageCount: header[2])
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) == layout.fileSize else {
            close(fd)
            throw HypervisorError.corruptImage("\(path): size does not match \(header[2]) pages")
        }
        return try SimImage(fd: fd, path: path, layout: layout)
    }

    private init(fd: Int32, path: String, layout: SimLayout) throws {
        self.fd = fd
        self.path = path
        self.layout = layout
        metaLength = layout.ramOffset
        guard let m = mmap(nil, metaLength, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), m != MAP_FAILED else {
            let e = errno
            close(fd)
            throw HypervisorError.systemCall(call: "mmap(header)", errno: e)
        }
        meta = m
    }

    deinit {
        if let ram { munmap(ram, Int(layout.pageCount) * SimLayout.pageSize) }
        munmap(meta, metaLength)
        close(fd)
    }

    // MARK: header

    public subscript(slot: SimSlot) -> UInt64 {
        get { meta.load(fromByteOffset: slot.offset, as: UInt64.self) }
        set { meta.storeBytes(of: newValue, toByteOffset: slot.offset, as: UInt64.self) }
    }

    public var name: String {
        get {
            let p = meta.advanced(by: SimSlot.nameOffset).assumingMemoryBound(to: UInt8.self)
            let len = min(Int(p[0]), SimSlot.nameLimit)
            return String(decoding: UnsafeBufferPointer(start: p + 1, count: len), as: UTF8.self)
        }
        set {
            let bytes = Array(newValue.utf8.prefix(SimSlot.nameLimit))
            let p = meta.advanced(by: SimSlot.nameOffset).assumingMemoryBound(to: UInt8.self)
            p[0] = UInt8(bytes.count)
            for (i, b) in bytes.enumerated() { p[1 + i] = b }
        }
    }

    /// The header page as bytes (the VM's CPU-like state).
    public var headerBytes: [UInt8] {
        Array(UnsafeRawBufferPointer(start: meta, count: SimLayout.pageSize))
    }

    /// Replaces the header page (restore on the destination), keeping what is local to this host:
    /// the guest's pid and the VM's name (which CONFIG, checked against the ticket, decided).
    public func restoreHeader(_ bytes: [UInt8]) {
        let pid = self[.guestPID]
        let localName = name
        bytes.withUnsafeBytes { meta.copyMemory(from: $0.baseAddress!, byteCount: min($0.count, SimLayout.pageSize)) }
        self[.guestPID] = pid
        name = localName
    }

    // MARK: dirty bitmap (atomic word access)

    var bitmap: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage> {
        meta.advanced(by: layout.bitmapOffset).bindMemory(to: UnsafeAtomic<UInt64>.Storage.self, capacity: layout.bitmapWords)
    }

    /// Marks a page dirty with release ordering (the guest calls this after writing the page).
    public func markDirty(_ pfn: UInt64) {
        let word = UnsafeAtomic<UInt64>(at: bitmap + Int(pfn >> 6))
        _ = word.loadThenBitwiseOr(with: 1 << (pfn & 63), ordering: .releasing)
    }

    /// Swaps every bitmap word to zero (acquire) and ORs it into `into`; returns the page count.
    public func drainDirty(into bitmapOut: inout DirtyBitmap) -> Int {
        var total = 0
        let base = bitmap
        for i in 0..<layout.bitmapWords {
            let word = UnsafeAtomic<UInt64>(at: base + i)
            let v = word.exchange(0, ordering: .acquiring)
            if v != 0 {
                bitmapOut.merge(word: v, at: i)
                total += v.nonzeroBitCount
            }
        }
        return total
    }

    // MARK: RAM

    /// Maps all of RAM (the guest's view). Returns its base address.
    public func mapAllRAM() throws -> UnsafeMutableRawPointer {
        if let ram { return ram }
        let length = Int(layout.pageCount) * SimLayout.pageSize
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(layout.ramOffset)), p != MAP_FAILED else {
            throw HypervisorError.systemCall(call: "mmap(ram)", errno: errno)
        }
        ram = p
        return p
    }

    /// Copies page `pfns[i]` into the i-th page slot of `buffer`, one pread(2) per run of
    /// consecutive pfns. Thread-safe.
    public func readPages(_ pfns: UnsafeBufferPointer<UInt64>, into buffer: UnsafeMutableRawPointer) throws {
        let size = SimLayout.pageSize
        var i = 0
        while i < pfns.count {
            var run = 1
            while i + run < pfns.count && pfns[i + run] == pfns[i] + UInt64(run) { run += 1 }
            try transfer(read: true, buffer + i * size, bytes: run * size, pfn: pfns[i])
            i += run
        }
    }

    /// Writes `bytes` (whole pages) at page `pfn` with pwrite(2). Thread-safe.
    public func writePages(at pfn: UInt64, _ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        try transfer(read: false, UnsafeMutableRawPointer(mutating: base), bytes: bytes.count, pfn: pfn)
    }

    private func transfer(read: Bool, _ p: UnsafeMutableRawPointer, bytes: Int, pfn: UInt64) throws {
        precondition(pfn + UInt64(bytes / SimLayout.pageSize) <= layout.pageCount, "pages outside the image")
        var done = 0
        let offset = off_t(layout.ramOffset) + off_t(pfn) * off_t(SimLayout.pageSize)
        while done < bytes {
            let n = read ? pread(fd, p + done, bytes - done, offset + off_t(done))
                         : pwrite(fd, p + done, bytes - done, offset + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw HypervisorError.systemCall(call: read ? "pread(\(path))" : "pwrite(\(path))", errno: errno)
            }
            guard n > 0 else { throw HypervisorError.corruptImage("\(path): ends inside its RAM") }
            done += n
        }
    }

    /// Pages marked dirty and not yet drained (relaxed loads: a count, not a snapshot).
    public func dirtyCount() -> Int {
        var total = 0
        let base = bitmap
        for i in 0..<layout.bitmapWords {
            total += UnsafeAtomic<UInt64>(at: base + i).load(ordering: .relaxed).nonzeroBitCount
        }
        return total
    }

    /// Allocates every page of the image now, the way Xen populates a new domain's memory at
    /// creation: ENOSPC surfaces here instead of mid-migration. The pages are not touched —
    /// tmpfs zeroes an allocated page only if it is read before it is written, and every page
    /// the source sends is written whole.
    public func allocate() throws {
        let rc = posix_fallocate(fd, 0, off_t(layout.fileSize))
        guard rc == 0 else { throw HypervisorError.systemCall(call: "posix_fallocate(\(path))", errno: rc) }
    }
}
