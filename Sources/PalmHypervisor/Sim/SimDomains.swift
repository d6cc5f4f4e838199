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

    func readPages<S: Sequence>(_ pfns: S, _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws
        where S.Element == UInt64 {
        for pfn in pfns {
            let p = try image.windowedPage(pfn)
            try body(pfn, UnsafeRawBufferPointer(start: p, count: SimLayout.pageSize))
        }
    }

    func captureState() throws -> [UInt8] { image.headerBytes }

    func setThrottle(percent: Int) throws { throttle.set(percent: percent) }

    func destroy() throws {
        throttle.stop()
        image.unmapWindow()
        try SimProcess.terminate(pid)
        unlink(image.path)
        unlink(hypervisor.logPath(image.name))
    }
}

/// An incoming sim VM: an image file that no process runs until `resume`. Its memory is allocated
/// up front (like Xen populating a new domain's physmap), so page faults and the kernel's zeroing
/// of fresh memory happen before PREPARED rather than on the page path.
final class SimDestinationDomain: DestinationDomain {
    let hypervisor: SimHypervisor
    let image: SimImage
    /// The held guest process and the pipe that starts it.
    let pid: pid_t
    private var startFD: Int32
    private var resumed = false

    init(hypervisor: SimHypervisor, image: SimImage, pid: pid_t, startFD: Int32) {
        self.hypervisor = hypervisor
        self.image = image
        self.pid = pid
        self.startFD = startFD
    }

    deinit { if startFD >= 0 { close(startFD) } }

    var info: VMInfo {
        VMInfo(name: image.name, pageSize: SimLayout.pageSize, pageCount: image.layout.pageCount,
               vcpus: UInt32(truncatingIfNeeded: image[.vcpus]), state: resumed ? .running : .incoming)
    }

    func writePage(pfn: UInt64, data: UnsafeRawBufferPointer?) throws {
        let p = try image.windowedPage(pfn)
        if let data, let base = data.baseAddress {
            p.copyMemory(from: base, byteCount: SimLayout.pageSize)
        } else {
            memset(p, 0, SimLayout.pageSize)
        }
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
        image.unmapWindow()
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
        image.unmapWindow()
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
