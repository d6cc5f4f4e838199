import Foundation
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// The `sim` development hypervisor: VMs are guest processes (palm-simguest) whose RAM, CPU-like
/// state and dirty bitmap live in an image file under `root` (tmpfs in practice). It implements
/// the same ``Hypervisor`` interface as Xen, so migrations of sim VMs run palm's real protocol.
///
/// Files in `root`: `NAME.vm` (a VM image), `NAME.incoming` (an image being received, never
/// running), `NAME.log` (the guest's console).
public final class SimHypervisor: Hypervisor, @unchecked Sendable {
    public let name = "sim"
    public let version = "palm-sim \(SimLayout.version)"
    public let root: String
    /// Guest memory this host may hold (the sim's "physical RAM").
    public let memoryLimitBytes: UInt64
    /// The palm-simguest executable.
    public let guestBinary: String

    public init(root: String, memoryLimitBytes: UInt64, guestBinary: String? = nil) throws {
        self.root = root
        self.memoryLimitBytes = memoryLimitBytes
        self.guestBinary = guestBinary ?? SimHypervisor.defaultGuestBinary()
        guard mkdir(root, 0o700) == 0 || errno == EEXIST else {
            throw HypervisorError.systemCall(call: "mkdir(\(root))", errno: errno)
        }
    }

    /// palm-simguest next to the running executable.
    public static func defaultGuestBinary() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("palm-simguest").path
    }

    func imagePath(_ vm: String) -> String { "\(root)/\(vm).vm" }
    func incomingPath(_ vm: String) -> String { "\(root)/\(vm).incoming" }
    func logPath(_ vm: String) -> String { "\(root)/\(vm).log" }

    static func validName(_ vm: String) -> Bool {
        !vm.isEmpty && vm.count <= 64 && vm.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }
            && !vm.hasPrefix(".")
    }

    // MARK: Hypervisor

    public func listVMs() throws -> [VMInfo] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return entries.sorted().compactMap { entry -> VMInfo? in
            let incoming = entry.hasSuffix(".incoming")
            guard entry.hasSuffix(".vm") || incoming else { return nil }
            guard let image = try? SimImage.open(path: "\(root)/\(entry)") else { return nil }
            let pid = pid_t(truncatingIfNeeded: image[.guestPID])
            let state: VMRunState
            if incoming { state = .incoming }
            else if !SimProcess.isGuest(pid, image: image.path) { state = .stopped }
            else { state = SimProcess.isStopped(pid) ? .paused : .running }
            return VMInfo(name: image.name, pageSize: SimLayout.pageSize, pageCount: image.layout.pageCount,
                          vcpus: UInt32(truncatingIfNeeded: image[.vcpus]), state: state)
        }
    }

    public func freeMemoryBytes() throws -> UInt64 {
        let used = try listVMs().reduce(UInt64(0)) { $0 + UInt64(SimLayout(pageCount: $1.pageCount).fileSize) }
        var fs = statvfs()
        var physical = UInt64.max
        if statvfs(root, &fs) == 0 { physical = UInt64(fs.f_bavail) * UInt64(fs.f_frsize) }
        return min(memoryLimitBytes > used ? memoryLimitBytes - used : 0, physical)
    }

    public func openSource(vm: String) throws -> SourceDomain {
        guard SimHypervisor.validName(vm) else { throw HypervisorError.noSuchVM(vm) }
        let image: SimImage
        do { image = try SimImage.open(path: imagePath(vm)) } catch HypervisorError.noSuchVM { throw HypervisorError.noSuchVM(vm) }
        let pid = pid_t(truncatingIfNeeded: image[.guestPID])
        guard SimProcess.isGuest(pid, image: image.path) else { throw HypervisorError.vmNotRunning(vm) }
        return SimSourceDomain(hypervisor: self, image: image, pid: pid)
    }

    public func createIncoming(config: VMConfig) throws -> DestinationDomain {
        guard SimHypervisor.validName(config.name) else {
            throw HypervisorError.invalidState("'\(config.name)' is not a valid sim VM name")
        }
        guard config.pageSize == UInt32(SimLayout.pageSize), config.pageCount < 1 << 32 else {
            throw HypervisorError.unsupported("sim VMs have 4 KiB pages and fewer than 2^32 of them")
        }
        if FileManager.default.fileExists(atPath: imagePath(config.name)) || FileManager.default.fileExists(atPath: incomingPath(config.name)) {
            throw HypervisorError.vmExists(config.name)
        }
        let needed = UInt64(SimLayout(pageCount: config.pageCount).fileSize)
        let free = try freeMemoryBytes()
        guard needed <= free else {
            throw HypervisorError.insufficientMemory(vm: config.name, neededBytes: needed, availableBytes: free)
        }
        let image = try SimImage.create(path: incomingPath(config.name), pageCount: config.pageCount,
                                        vcpus: config.vcpus, name: config.name)
        do {
            try image.allocate()
            // Like Xen creating the domain before its memory arrives: the guest process exists
            // now, held before its first instruction, so resuming it costs one write.
            let guest = try SimProcess.spawn(binary: guestBinary,
                                             args: ["run", "--image", image.path, "--final", imagePath(config.name), "--incoming"],
                                             log: logPath(config.name), holdStart: true)
            return SimDestinationDomain(hypervisor: self, image: image, pid: guest.pid, startFD: guest.startFD ?? -1)
        } catch {
            unlink(image.path)
            throw error
        }
    }

    // MARK: sim toolstack (what `xl create`/`xl destroy` are for Xen)

    /// A workload for a new sim VM.
    public struct Workload: Sendable, Equatable {
        public var rate: UInt64
        public var workingSetPages: UInt64
        public var pattern: SimPattern
        public var hotPercent: UInt64
        public init(rate: UInt64 = 0, workingSetPages: UInt64 = 0, pattern: SimPattern = .uniform, hotPercent: UInt64 = 90) {
            self.rate = rate
            self.workingSetPages = workingSetPages
            self.pattern = pattern
            self.hotPercent = hotPercent
        }
    }

    /// Creates and boots a VM: writes its image, then starts its guest, which fills memory.
    @discardableResult
    public func create(vm: String, memoryBytes: UInt64, vcpus: UInt32 = 1, workload: Workload,
                       fill: SimFill = .random) throws -> VMInfo {
        guard SimHypervisor.validName(vm) else {
            throw HypervisorError.invalidState("'\(vm)' is not a valid VM name (letters, digits, '-', '_', '.')")
        }
        let pages = memoryBytes / UInt64(SimLayout.pageSize)
        guard pages > 0 else { throw HypervisorError.invalidState("a VM needs at least one page of memory") }
        let needed = UInt64(SimLayout(pageCount: pages).fileSize)
        let free = try freeMemoryBytes()
        guard needed <= free else { throw HypervisorError.insufficientMemory(vm: vm, neededBytes: needed, availableBytes: free) }
        let path = imagePath(vm)
        let image = try SimImage.create(path: path, pageCount: pages, vcpus: vcpus, name: vm)
        image[.rate] = workload.rate
        image[.workingSet] = min(workload.workingSetPages == 0 ? pages : workload.workingSetPages, pages)
        image[.pattern] = workload.pattern.rawValue
        image[.hotPercent] = min(workload.hotPercent, 100)
        image[.createdMillis] = UInt64(Date().timeIntervalSince1970 * 1000)
        do {
            _ = try startGuest(vm: vm, path: path, extra: ["--initialize", fill.name])
        } catch {
            unlink(path)
            throw error
        }
        return VMInfo(name: vm, pageSize: SimLayout.pageSize, pageCount: pages, vcpus: vcpus, state: .running)
    }

    func startGuest(vm: String, path: String, extra: [String] = []) throws -> pid_t {
        guard access(guestBinary, X_OK) == 0 else {
            throw HypervisorError.guestFailed("guest executable \(guestBinary) not found (build palm-simguest)")
        }
        return try SimProcess.spawn(binary: guestBinary, args: ["run", "--image", path] + extra, log: logPath(vm)).pid
    }

    /// Destroys a VM: kills its guest and removes its image.
    public func destroy(vm: String) throws {
        let path = imagePath(vm)
        let image = try SimImage.open(path: path)
        try SimProcess.terminate(pid_t(truncatingIfNeeded: image[.guestPID]))
        unlink(path)
        unlink(logPath(vm))
    }

    public func incomingVMs() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return entries.filter { $0.hasSuffix(".incoming") }.map { String($0.dropLast(".incoming".count)) }.sorted()
    }

    public func completeIncoming(vm: String) throws {
        let image = try SimImage.open(path: incomingPath(vm))
        let held = pid_t(truncatingIfNeeded: image[.guestPID])
        if SimProcess.isGuest(held, image: image.path) { try SimProcess.terminate(held) }
        guard access(imagePath(vm), F_OK) != 0 else { throw HypervisorError.vmExists(vm) }
        image[.verifyRequest] &+= 1
        image[.resumes] &+= 1
        image[.guestPID] = 0
        guard rename(image.path, imagePath(vm)) == 0 else { throw HypervisorError.systemCall(call: "rename", errno: errno) }
        _ = try startGuest(vm: vm, path: imagePath(vm))
    }

    public func discardIncoming(vm: String) {
        if let image = try? SimImage.open(path: incomingPath(vm)) {
            let pid = pid_t(truncatingIfNeeded: image[.guestPID])
            if SimProcess.isGuest(pid, image: image.path) { try? SimProcess.terminate(pid) }
        }
        unlink(incomingPath(vm))
        unlink(logPath(vm))
    }

    /// The guest's self-check record, read from its image.
    public struct SelfCheck: Equatable, Sendable {
        public var requested: UInt64
        public var done: UInt64
        public var failures: UInt64
        public var lastBadPages: UInt64
        public var resumes: UInt64
        public var writes: UInt64
        public var passed: Bool { done == requested && failures == 0 }
    }

    public func selfCheck(vm: String) throws -> SelfCheck {
        let image = try SimImage.open(path: imagePath(vm))
        return SelfCheck(requested: image[.verifyRequest], done: image[.verifyDone], failures: image[.verifyFailures],
                         lastBadPages: image[.lastBadPages], resumes: image[.resumes], writes: image[.writes])
    }

    /// Waits (bounded) until the guest has completed every self-check requested of it.
    public func awaitSelfCheck(vm: String, timeout: Double = 60) throws -> SelfCheck {
        let image = try SimImage.open(path: imagePath(vm))
        let pid = pid_t(truncatingIfNeeded: image[.guestPID])
        try SimProcess.waitUntil(timeout: timeout, what: "the self-check of \(vm)") {
            image[.verifyDone] == image[.verifyRequest] || !SimProcess.isGuest(pid, image: image.path)
        }
        return try selfCheck(vm: vm)
    }

    /// The pid of a VM's running guest, if any.
    public func guestPID(vm: String) -> pid_t? {
        guard let image = try? SimImage.open(path: imagePath(vm)) else { return nil }
        let pid = pid_t(truncatingIfNeeded: image[.guestPID])
        return SimProcess.isGuest(pid, image: image.path) ? pid : nil
    }

    /// Opens a VM's image for inspection (tests, digests).
    /// The workload's configured rate (palm-simguest create --rate).
    /// 0: sim hosts share one machine, whose load is no host's own.
    public func hostCPULoad() -> Double { 0 }

    public func dirtyRateEstimate(vm: String) -> Double? {
        guard SimHypervisor.validName(vm), let image = try? openImage(vm: vm) else { return nil }
        return Double(image[.rate])
    }

    public func openImage(vm: String) throws -> SimImage { try SimImage.open(path: imagePath(vm)) }
}
