import PalmHypervisor
import PalmSupport
import Foundation
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// An incoming domain on a Xen destination. From CONFIG on, `libxl_domain_create_restore` — in
/// palm-dest's own process, on a thread of its own, as xl's receiver calls it — reads a migration
/// stream palm writes as the pages arrive (`XenRestoreStream`), so libxenguest fills guest memory
/// during the pre-copy rounds just as it does under `xl migrate`; STATE completes the stream and
/// libxl returns with the domain built (devices, console, xenstore) and paused under the name
/// `NAME--incoming`. No `xl` process sits on the page path.
///
/// Guarantees: nothing runs before `resume` (after COMMIT): then the domain is unpaused, and
/// `settle` renames it to NAME. `discard` ends the stream (libxl then destroys what it built),
/// waits for the restore, and destroys whatever is left under the incoming name.
final class XenIncomingDomain: DestinationDomain {
    static let suffix = "--incoming"

    let info: VMInfo
    private let xc: XenControl
    private let toolstack: XenToolstack
    private let layout: XenPageLayout
    private var restore: LibxlRestore?
    private var stream: XenRestoreStream?
    private var domid: UInt32?
    /// Held while a batch enters the restore pipe; the value is which of palm's pages the stream
    /// has carried so far (libxenguest populates a frame the first time it sees it).
    private let pipeWriter: LockedValueBox<DirtyBitmap>

    init(xc: XenControl, toolstack: XenToolstack, config: VMConfig) throws {
        self.xc = xc
        self.toolstack = toolstack
        let platform = try XenPlatformConfig.decode(config.platform)
        guard platform.layout.count == config.pageCount, Int(config.pageSize) == xc.pageSize else {
            throw HypervisorError.corruptImage("CONFIG says \(config.pageCount) pages of \(config.pageSize) bytes, the Xen layout \(platform.layout.count) of \(xc.pageSize)")
        }
        layout = platform.layout
        pipeWriter = LockedValueBox(DirtyBitmap(pageCount: platform.layout.count))
        info = VMInfo(name: config.name, pageSize: xc.pageSize, pageCount: config.pageCount, vcpus: config.vcpus, state: .incoming)
        let incomingName = config.name + Self.suffix
        let json = try XenToolstack.renamed(platform.configJSON, to: incomingName)

        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw HypervisorError.systemCall(call: "pipe", errno: errno) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        do {
            let restore = try toolstack.startRestore(configJSON: json, readingFrom: fds[0])
            self.restore = restore
            let stream = XenRestoreStream(fd: fds[1], pageSize: xc.pageSize, stallTimeout: toolstack.timeout,
                                          readerAlive: { restore.isRunning })
            self.stream = stream
            try stream.writeHeaders(xenMajor: platform.xenMajor, xenMinor: platform.xenMinor,
                                    cpuid: platform.cpuid, msrs: platform.msrs)
        } catch {
            if restore == nil { close(fds[0]) }
            if stream == nil { close(fds[1]) }
            try? discard()
            throw error
        }
    }

    /// Unpausing a built domain.
    var resumeEstimate: Double { 0.005 }

    /// Page streams deliver batches on several threads; the restore stream is one pipe, so
    /// batches enter it one at a time.
    func writePages(_ pages: IncomingPages) throws {
        try pipeWriter.withLockedValue { carried in
            guard let stream else { throw HypervisorError.invalidState("\(info.name) is no longer receiving pages") }
            do {
                try stream.pages(pages, layout: layout, carried: &carried)
            } catch {
                throw restoreFailure(error)
            }
        }
    }

    func restoreState(_ state: [UInt8]) throws {
        guard let stream, let restore else { throw HypervisorError.invalidState("\(info.name) is no longer receiving") }
        let decoded = try XenDomainState.decode(state)
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
    }

    func discard() throws {
        stream?.close()
        stream = nil
        _ = try? restore?.wait(timeout: toolstack.timeout)
        restore = nil
        if let id = try xc.domain(named: info.name + Self.suffix)?.domid {
            try toolstack.destroy(domid: id)
        }
        domid = nil
    }
}
