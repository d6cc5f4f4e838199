import Atomics
#if canImport(Glibc)
import Glibc
#endif

/// A running sim VM as the source of a migration.
final class SimSourceDomain: SourceDomain {
    let hypervisor: SimHypervisor
    let image: SimImage
    let pid: pid_t
    private let throttle: SimThrottle
    private var paused = false
    private var scratch: DirtyBitmap

    init(hypervisor: SimHypervisor, image: SimImage, pid: pid_t) {
        self.hypervisor = hypervisor
        self.image = image
        self.pid = pid
        throttle = SimThrottle(pid: pid)
        scratch = DirtyBitmap(pageCount: image.layout.pageCount)
    }

    var info: VMInfo {
        VMInfo(name: image.name, pageSize: SimLayout.pageSize, pageCount: image.layout.pageCount,
               vcpus: UInt32(truncatingIfNeeded: image[.vcpus]), state: paused ? .paused : .running)
    }

    func pause() throws {
        throttle.stop()
        try SimProcess.stop(pid)
        paused = true
    }

    /// Resumes the guest on this host; it runs its self-check first.
    func resume() throws {
        throttle.stop()
        image[.verifyRequest] &+= 1
        image[.resumes] &+= 1
        try SimProcess.resume(pid)
        paused = false
    }

    func enableDirtyLog() throws {
        scratch.clear()
        _ = image.drainDirty(into: &scratch)
    }

    func collectDirty(into bitmap: inout DirtyBitmap) throws -> Int {
        image.drainDirty(into: &bitmap)
    }

    func disableDirtyLog() throws {}

    /// SIGSTOP and the kernel confirming the stop.
    var pauseEstimate: Double { 0.000_5 }

    func peekDirtyCount() throws -> Int? { image.dirtyCount() }

    func copyPages(_ pfns: UnsafeBufferPointer<UInt64>, into buffer: UnsafeMutableRawPointer) throws {
        try image.readPages(pfns, into: buffer)
    }

    func captureState() throws -> [UInt8] { image.headerBytes }

    func setThrottle(percent: Int) throws { throttle.set(percent: percent) }

    func destroy() throws {
        throttle.stop()
        try SimProcess.terminate(pid)
        unlink(image.path)
        unlink(hypervisor.logPath(image.name))
    }
}

/// An incoming sim VM: an image file that no process runs until `resume`. Its memory is allocated
/// up front (like Xen populating a new domain's physmap), so a host without room fails before
/// PREPARED; pages are written with pwrite(2) from the engine's receive buffers, and a zero page
/// costs nothing unless an earlier round wrote that page (a bitmap of written pages says so).
final class SimDestinationDomain: DestinationDomain {
    let hypervisor: SimHypervisor
    let image: SimImage
    /// The held guest process and the pipe that starts it.
    let pid: pid_t
    private var startFD: Int32
    private var resumed = false
    /// One bit per page: written with data by an earlier batch (set atomically by stream threads).
    private let written: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>
    private let writtenWords: Int
    /// Never written after it is made: shared read-only by every thread.
    nonisolated(unsafe) private static let zeroPage: UnsafeRawBufferPointer = {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: SimLayout.pageSize, alignment: 16)
        p.initializeMemory(as: UInt8.self, repeating: 0)
        return UnsafeRawBufferPointer(p)
    }()

    init(hypervisor: SimHypervisor, image: SimImage, pid: pid_t, startFD: Int32) {
        self.hypervisor = hypervisor
        self.image = image
        self.pid = pid
        self.startFD = startFD
        writtenWords = image.layout.bitmapWords
        written = .allocate(capacity: writtenWords)
        written.initialize(repeating: UnsafeAtomic<UInt64>.Storage(0), count: writtenWords)
    }

    deinit {
        if startFD >= 0 { close(startFD) }
        written.deallocate()
    }

    /// Writing a pipe and renaming a file.
    var resumeEstimate: Double { 0.000_2 }

    var info: VMInfo {
        VMInfo(name: image.name, pageSize: SimLayout.pageSize, pageCount: image.layout.pageCount,
               vcpus: UInt32(truncatingIfNeeded: image[.vcpus]), state: resumed ? .running : .incoming)
    }

    /// Data pages go out with one pwrite per run of consecutive pfns; a zero page is written
    /// only over a page an earlier batch wrote.
    func writePages(_ pages: IncomingPages) throws {
        let size = SimLayout.pageSize
        var i = 0, next = 0
        while i < pages.pfns.count {
            let pfn = pages.pfns[i]
            if pages.zero[i] {
                if markWritten(pfn, false) { try image.writePages(at: pfn, Self.zeroPage) }
                i += 1
                continue
            }
            var run = 1
            while i + run < pages.pfns.count, !pages.zero[i + run], pages.pfns[i + run] == pfn + UInt64(run) { run += 1 }
            try image.writePages(at: pfn, UnsafeRawBufferPointer(rebasing: pages.data[(next * size)..<((next + run) * size)]))
            for k in 0..<run { _ = markWritten(pfn + UInt64(k), true) }
            next += run
            i += run
        }
    }

    /// Sets (`data`) or clears the page's written bit; returns whether it was set before.
    private func markWritten(_ pfn: UInt64, _ data: Bool) -> Bool {
        let word = UnsafeAtomic<UInt64>(at: written + Int(pfn >> 6))
        let bit: UInt64 = 1 << (pfn & 63)
        let old = data ? word.loadThenBitwiseOr(with: bit, ordering: .relaxed)
                       : word.loadThenBitwiseAnd(with: ~bit, ordering: .relaxed)
        return old & bit != 0
    }

    func restoreState(_ state: [UInt8]) throws {
        guard state.count == SimLayout.pageSize else {
            throw HypervisorError.corruptImage("sim state must be one page, got \(state.count) bytes")
        }
        let words = state.withUnsafeBytes { raw in (0..<5).map { raw.load(fromByteOffset: $0 * 8, as: UInt64.self) } }
        guard words[0] == SimLayout.magic, words[1] == SimLayout.version, words[2] == image.layout.pageCount,
              words[3] == UInt64(SimLayout.pageSize) else {
            throw HypervisorError.corruptImage("sim state does not describe this VM (\(image.layout.pageCount) pages)")
        }
        image.restoreHeader(state)
    }

    /// Releases the held guest, then renames the image into place. In this order every crash
    /// window leaves either a running guest or an `.incoming` image that start-up recovery
    /// resumes (the migration is committed by then) — never a renamed image with no guest.
    func resume() throws {
        let name = image.name
        let finalPath = hypervisor.imagePath(name)
        guard access(finalPath, F_OK) != 0 else { throw HypervisorError.vmExists(name) }
        guard SimProcess.isGuest(pid, image: image.path) else { throw HypervisorError.guestFailed("the held guest of \(name) exited") }
        image[.verifyRequest] &+= 1
        image[.resumes] &+= 1
        var go: UInt8 = UInt8(ascii: "g")
        guard write(startFD, &go, 1) == 1 else { throw HypervisorError.systemCall(call: "start guest", errno: errno) }
        close(startFD)
        startFD = -1
        guard rename(image.path, finalPath) == 0 else {
            throw HypervisorError.systemCall(call: "rename(\(image.path))", errno: errno)
        }
        resumed = true
    }

    func discard() throws {
        if startFD >= 0 { close(startFD); startFD = -1 }  // a held guest exits when its start pipe closes
        if resumed {
            try hypervisor.destroy(vm: image.name)
        } else {
            try? SimProcess.terminate(pid)
            unlink(image.path)
            unlink(hypervisor.logPath(image.name))
        }
    }
}
