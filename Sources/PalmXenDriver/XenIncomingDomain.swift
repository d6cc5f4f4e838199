import PalmHypervisor
import CXenShims
import PalmSupport
import Foundation
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// An incoming domain on a Xen destination, built by `libxl_domain_create_restore` in palm-dest's
/// own process, on a thread of its own, as xl's receiver calls it, under the name `NAME--incoming`.
/// No `xl` process sits on the page path. Two ways, by what CONFIG carried:
///
/// ```text
///   built early (the source sent its guest's provisional state — XenPlatformConfig v2):
///     CONFIG ─▶ stream: headers · every frame XALLOC · provisional TSC/HVM context/params · END
///               libxl: populate ─▶ state ─▶ xenstore ─▶ devices (hotplug scripts)   ← during pre-copy
///     pages  ─▶ XenGuestMemory: straight into the built domain (ring frames held back)
///     STATE  ─▶ wait for libxl · ring frames · final TSC/HVM context/params
///
///   built at the end (a version-1 source):
///     CONFIG ─▶ stream: headers;  pages ─▶ PAGE_DATA records (libxenguest writes them)
///     STATE  ─▶ TSC/HVM context/params · END ─▶ libxl: xenstore ─▶ devices  ← in the downtime
/// ```
///
/// Built early, the ≈ 6 s the hotplug scripts take under emulation (block, vif-bridge) leave the
/// guest's downtime. The domain never runs before `resume`.
///
/// Guarantees: nothing runs before `resume` (after COMMIT): then the domain is unpaused, and
/// `settle` renames it to NAME. `discard` ends the stream (libxl then destroys what it built),
/// waits for the restore, and destroys whatever is left under the incoming name. From before
/// libxl starts until `discard` or `settle`, the build is marked in xenstore (`XenIncomingMarks`),
/// so a restarted palm-dest finds the domain even if this one was killed before libxl named it.
final class XenIncomingDomain: DestinationDomain {
    static let suffix = "--incoming"
    /// Linux's F_SETPIPE_SZ (not exported by Swift's Glibc module).
    private static let setPipeSize: Int32 = 1031

    let info: VMInfo
    private let xc: XenControl
    private let toolstack: XenToolstack
    private let layout: XenPageLayout
    private let incomingName: String
    /// The domain's UUID and the mark that lets a restarted palm-dest find it (XenIncomingMarks).
    private let uuid: String
    private let marks: XenIncomingMarks
    private var restore: LibxlRestore?
    private var stream: XenRestoreStream?
    private var domid: UInt32?
    /// Built early: the thread writing the build stream, and the built domain's memory once
    /// libxl has populated it.
    private var builder: BackgroundResult<Void>?
    private var watcher: BackgroundResult<XenGuestMemory>?
    private var heldBack: Set<UInt64> = []
    private let memory = LockedValueBox<BuildState>(.building(waiting: [], bytes: 0))
    private let buildBufferBytes: Int

    /// Built early: pages that arrived before libxl had populated the domain wait in arrival order
    /// (at most `buildBufferBytes`); the first writer to find the domain populated writes them,
    /// under the same lock, before any page goes in directly.
    private enum BuildState {
        case building(waiting: [HeldBatch], bytes: Int)
        case built(XenGuestMemory)
    }

    /// A copy of a received batch.
    private struct HeldBatch {
        var pfns: [UInt64]
        var zero: [Bool]
        var data: [UInt8]
        init(_ pages: IncomingPages) {
            pfns = Array(pages.pfns)
            zero = Array(pages.zero)
            data = Array(pages.data)
        }
        func write(into memory: XenGuestMemory, pageSize: Int) throws {
            try pfns.withUnsafeBufferPointer { p in
                try zero.withUnsafeBufferPointer { z in
                    try data.withUnsafeBytes { d in try memory.write(IncomingPages(pfns: p, zero: z, data: d, pageSize: pageSize)) }
                }
            }
        }
    }
    /// Built at the end: held while a batch enters the restore pipe; the value is which of palm's
    /// pages the stream has carried so far (libxenguest populates a frame the first time it sees it).
    private let pipeWriter: LockedValueBox<DirtyBitmap>

    /// Hands the domain, once it runs here under its name, to the agent's lifecycle keeper.
    private let keep: @Sendable (UInt32, String) throws -> Void

    init(xc: XenControl, toolstack: XenToolstack, config: VMConfig, buildBufferBytes: Int = 0,
         keep: @escaping @Sendable (UInt32, String) throws -> Void = { _, _ in }) throws {
        self.xc = xc
        self.keep = keep
        self.buildBufferBytes = buildBufferBytes
        self.toolstack = toolstack
        let platform = try XenPlatformConfig.decode(config.platform)
        guard platform.layout.count == config.pageCount, Int(config.pageSize) == xc.pageSize else {
            throw HypervisorError.corruptImage("CONFIG says \(config.pageCount) pages of \(config.pageSize) bytes, the Xen layout \(platform.layout.count) of \(xc.pageSize)")
        }
        layout = platform.layout
        pipeWriter = LockedValueBox(DirtyBitmap(pageCount: platform.layout.count))
        info = VMInfo(name: config.name, pageSize: xc.pageSize, pageCount: config.pageCount, vcpus: config.vcpus, state: .incoming)
        incomingName = config.name + Self.suffix
        let (json, uuid) = try XenToolstack.incomingConfig(platform.configJSON, name: incomingName)
        self.uuid = uuid
        marks = XenIncomingMarks(xc: xc)
        let provisional = platform.provisionalState

        var fds: [Int32] = [0, 0]
        // Close-on-exec from birth (not set after pipe()): a hotplug script libxl forks meanwhile
        // for another domain must not inherit the write end and hold the restore's reader open.
        guard palm_pipe_cloexec(&fds) == 0 else { throw HypervisorError.systemCall(call: "pipe2", errno: errno) }
        _ = fcntl(fds[1], Self.setPipeSize, 1 << 20)   // fewer wake-ups of libxenguest's reader; best effort
        do {
            // Before libxl creates anything: a palm-dest killed from here on leaves a domain its
            // successor can find, named or not. A failure from here on removes it (discard).
            try marks.set(.init(uuid: uuid, incomingName: incomingName))
            let restore = try toolstack.startRestore(configJSON: json, readingFrom: fds[0])
            self.restore = restore
            let stream = XenRestoreStream(fd: fds[1], pageSize: xc.pageSize, stallTimeout: toolstack.timeout,
                                          readerAlive: { restore.isRunning })
            if let provisional {
                // xenstore's and the console's ring frames (HVM_PARAM_STORE_PFN, _CONSOLE_PFN).
                heldBack = Set(provisional.params.filter { $0.0 == 1 || $0.0 == 17 }.map { $0.1 })
                let layout = self.layout, heldBack = self.heldBack, name = incomingName, state = memory
                let timeout = toolstack.timeout
                watcher = BackgroundResult(name: "palm-xen-built") {
                    try Self.watchBuild(xc: xc, name: name, layout: layout, heldBack: heldBack, restore: restore,
                                        timeout: timeout, state: state)
                }
                builder = BackgroundResult(name: "palm-xen-build") {
                    defer { stream.close() }
                    try stream.writeHeaders(xenMajor: platform.xenMajor, xenMinor: platform.xenMinor,
                                            cpuid: platform.cpuid, msrs: platform.msrs)
                    try stream.allocateAll(layout)
                    try stream.writeTail(provisional)
                }
            } else {
                self.stream = stream
                try stream.writeHeaders(xenMajor: platform.xenMajor, xenMinor: platform.xenMinor,
                                        cpuid: platform.cpuid, msrs: platform.msrs)
            }
        } catch {
            if restore == nil { close(fds[0]) }
            if stream == nil, builder == nil { close(fds[1]) }
            try? discard()
            throw error
        }
    }

    /// Unpausing a built domain.
    var resumeEstimate: Double { 0.005 }

    /// Built early: straight into guest memory, from several threads at once. Built at the end:
    /// page streams deliver batches on several threads; the restore stream is one pipe, so
    /// batches enter it one at a time.
    func writePages(_ pages: IncomingPages) throws {
        if builder != nil {
            // What holding it costs: its data and its page table.
            let cost = pages.data.count + pages.pfns.count * 9
            let built = memory.withLockedValue { state -> XenGuestMemory?? in
                switch state {
                case let .built(m):
                    return m
                case .building(var waiting, let bytes) where bytes + cost <= buildBufferBytes:
                    state = .building(waiting: [], bytes: 0)   // `waiting` is now the array's only owner: append in place
                    waiting.append(HeldBatch(pages))
                    state = .building(waiting: waiting, bytes: bytes + cost)
                    return .some(nil)   // held
                case .building:
                    return nil          // no room: wait for the build
                }
            }
            switch built {
            case let .some(m?): try m.write(pages)
            case .some(nil): break
            case nil: try builtMemory().write(pages)
            }
            return
        }
        try pipeWriter.withLockedValue { carried in
            guard let stream else { throw HypervisorError.invalidState("\(info.name) is no longer receiving pages") }
            do {
                try stream.pages(pages, layout: layout, carried: &carried)
            } catch {
                throw restoreFailure(error)
            }
        }
    }

    /// Watches for libxl to have populated the early-built domain and set its provisional state —
    /// it introduces the domain to xenstored (`store/ring-ref`) only after that, and before the
    /// devices come up — then writes the held batches and hands over the domain's memory. Waits
    /// at most the toolstack timeout.
    private static func watchBuild(xc: XenControl, name: String, layout: XenPageLayout, heldBack: Set<UInt64>,
                                   restore: LibxlRestore, timeout: Double,
                                   state: LockedValueBox<BuildState>) throws -> XenGuestMemory {
        let deadline = MonotonicClock.now() + timeout
        var domid: UInt32?   // looked up by name (every domain's name is read) until libxl has created it
        while true {
            let ending = !restore.isRunning   // read first: a restore that ended had populated, or failed
            if domid == nil { domid = try xc.domain(named: name)?.domid }
            // Once ready, the name is read again: a domid libxl freed (a failed restore destroys its
            // domain) must not be another domain's by the time pages are written into it.
            if let id = domid, xc.read("/local/domain/\(id)/store/ring-ref") != nil, xc.name(of: id) == name {
                let built = XenGuestMemory(xc: xc, domid: id, layout: layout, heldBack: heldBack)
                try state.withLockedValue { s in
                    if case let .building(waiting, _) = s {
                        for batch in waiting { try batch.write(into: built, pageSize: xc.pageSize) }
                    }
                    s = .built(built)
                }
                return built
            }
            if let failure = restore.failure { throw failure }
            if ending { throw HypervisorError.guestFailed("libxl's restore ended without populating \(name)") }
            guard MonotonicClock.now() < deadline else {
                throw HypervisorError.toolStalled(tool: "libxl_domain_create_restore", seconds: timeout)
            }
            usleep(5_000)
        }
    }

    /// The early-built domain's memory (waits for the watcher).
    private func builtMemory() throws -> XenGuestMemory {
        guard let watcher else { throw HypervisorError.invalidState("\(info.name) is not built early") }
        do { return try watcher.wait() } catch { throw restore?.failure ?? error }
    }

    func restoreState(_ state: [UInt8]) throws {
        guard let restore else { throw HypervisorError.invalidState("\(info.name) is no longer receiving") }
        let decoded = try XenDomainState.decode(state)
        if let builder {
            do { try builder.wait() } catch { throw restore.failure ?? error }
            let id = try restore.wait(timeout: toolstack.timeout)
            self.restore = nil
            let memory = try builtMemory()   // the held batches are in
            guard memory.domid == id else { throw HypervisorError.invalidState("libxl built domain \(id), pages went to \(memory.domid)") }
            try memory.writeHeldBack()
            try decoded.apply(xc: xc, domid: id)
            domid = id
            return
        }
        guard let stream else { throw HypervisorError.invalidState("\(info.name) is no longer receiving") }
        do {
            try stream.writeTail(decoded)
        } catch {
            throw restoreFailure(error)
        }
        stream.close()
        self.stream = nil
        let id = try restore.wait(timeout: toolstack.timeout)
        self.restore = nil
        domid = id
    }

    /// When the pipe breaks, what libxl said is the useful error.
    private func restoreFailure(_ error: Error) -> Error { restore?.failure ?? error }

    func resume() throws {
        guard let domid else { throw HypervisorError.invalidState("\(info.name) was not restored") }
        try xc.unpause(domid)
    }

    /// NAME--incoming becomes NAME once the guest runs (the source freed the name before it
    /// suspended), so the `xl rename` is not part of the downtime.
    func settle() throws {
        // Already NAME when resume failed and the receiver started the VM through completeIncoming.
        guard let domid, xc.name(of: domid) != info.name else { return }
        try toolstack.rename(domid: domid, to: info.name)
        // Named for good: the mark has nothing left to find (one left behind finds nothing either,
        // as this domain has run).
        try? marks.remove(uuid: uuid)
        // From now on palm-dest keeps its life as xl would (restart on reboot, …).
        try keep(domid, info.name)
    }

    func discard() throws {
        stream?.close()
        stream = nil
        _ = try? builder?.wait()
        _ = try? watcher?.wait()
        _ = try? restore?.wait(timeout: toolstack.timeout)
        restore = nil
        if let id = try xc.domain(named: incomingName)?.domid {
            try toolstack.destroy(domid: id)
        }
        domid = nil
        try marks.remove(uuid: uuid)
    }
}
