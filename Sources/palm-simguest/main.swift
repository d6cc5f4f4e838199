import ArgumentParser
import Foundation
import PalmHypervisor
import PalmSupport
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// palm-simguest: the `sim` hypervisor's guest process and its small toolstack
/// (create, list, check, destroy), the development stand-in for Xen's `xl`.
struct SimGuest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-simguest",
        abstract: "The sim hypervisor: guest processes over shared memory, for developing and testing palm.",
        subcommands: [Create.self, List.self, Check.self, Destroy.self, Run.self])
}

struct RootOption: ParsableArguments {
    @Option(help: "The sim hypervisor's image directory (one per simulated host).")
    var root: String = "/dev/shm/palm-sim"
    @Option(help: "Guest memory this simulated host may hold (e.g. 16G).")
    var memoryLimit: String = "16G"

    func hypervisor() throws -> SimHypervisor {
        guard let limit = ByteSize.parse(memoryLimit) else { throw ValidationError("--memory-limit: '\(memoryLimit)' is not a size") }
        return try SimHypervisor(root: root, memoryLimitBytes: limit)
    }
}

struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create and boot a sim VM with a memory-dirtying workload.")
    @Argument(help: "VM name.") var name: String
    @OptionGroup var root: RootOption
    @Option(help: "Guest memory (e.g. 256M, 1G).") var memory: String = "256M"
    @Option(help: "vCPUs.") var vcpus: UInt32 = 1
    @Option(help: "Pages the workload dirties per second (0: idle).") var rate: UInt64 = 0
    @Option(help: "Working set the workload writes (e.g. 64M; default all of memory).") var workingSet: String?
    @Option(help: "Write pattern: uniform, hot-set, sequential.") var pattern: String = "uniform"
    @Option(help: "Percent of hot-set writes that go to the working set.") var hotPercent: UInt64 = 90
    @Option(help: "Initial memory: random (incompressible), zero, or realistic (30 % zero, 40 % text-like, 30 % random pages).") var fill: String = "random"

    func run() throws {
        guard let bytes = ByteSize.parse(memory), bytes >= 4096 else { throw ValidationError("--memory: '\(memory)' is not a size ≥ 4K") }
        guard let pat = SimPattern(name: pattern) else { throw ValidationError("--pattern must be uniform, hot-set or sequential") }
        guard let memoryFill = SimFill(name: fill) else { throw ValidationError("--fill must be random, zero or realistic") }
        var ws: UInt64 = 0
        if let workingSet {
            guard let b = ByteSize.parse(workingSet) else { throw ValidationError("--working-set: '\(workingSet)' is not a size") }
            ws = b / 4096
        }
        let info = try root.hypervisor().create(vm: name, memoryBytes: bytes, vcpus: vcpus,
                                                workload: .init(rate: rate, workingSetPages: ws, pattern: pat, hotPercent: hotPercent),
                                                fill: memoryFill)
        print("created \(info.name): \(info.memoryBytes >> 20) MiB, \(rate) pages/s \(pat.name)")
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the VMs of a simulated host.")
    @OptionGroup var root: RootOption
    func run() throws {
        for vm in try root.hypervisor().listVMs() {
            print("\(vm.name)\t\(vm.memoryBytes >> 20) MiB\t\(vm.state.rawValue)")
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Wait for a VM's pending self-checks and print the result.")
    @Argument var name: String
    @OptionGroup var root: RootOption
    func run() throws {
        let c = try root.hypervisor().awaitSelfCheck(vm: name)
        print("\(name): self-checks \(c.done)/\(c.requested), failures \(c.failures), resumes \(c.resumes), writes \(c.writes)")
        if !c.passed { throw ExitCode(1) }
    }
}

struct Destroy: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Destroy a VM.")
    @Argument var name: String
    @OptionGroup var root: RootOption
    func run() throws { try root.hypervisor().destroy(vm: name) }
}

/// The guest itself (started by the sim driver, not by hand).
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a guest from its image (used by the sim driver).",
                                                    shouldDisplay: false)
    @Option var image: String
    @Option(help: "Initialize memory first: random or zero.") var initialize: String?
    @Option(help: "Where the image will live once resumed (incoming guests).") var final: String?
    @Flag(help: "Wait for a start byte on stdin before running; exit if stdin closes.") var incoming = false

    func run() throws {
        setsid()  // own session: the guest outlives the agent that started it
        closeInheritedDescriptors()
        let img = try SimImage.open(path: image)
        let core = try SimGuestCore(image: img)
        if let initialize {
            guard let fill = SimFill(name: initialize) else { throw ValidationError("--initialize must be random, zero or realistic") }
            core.initialize(fill: fill)
        }
        img[.guestPID] = UInt64(getpid())
        print("ready \(getpid())")
        fflush(nil)  // every output stream (stdout: the readiness line)
        dup2(2, 1)  // from now on stdout is the console log
        if incoming {
            // Held until the destination resumes the VM; a closed pipe means the migration was abandoned.
            var go: UInt8 = 0
            guard read(0, &go, 1) == 1, go == UInt8(ascii: "g") else { Glibc.exit(0) }
        }
        core.recover()
        let name = img.name
        log("\(name): running (\(img.layout.pageCount) pages, \(img[.rate]) pages/s \(SimPattern(rawValue: img[.pattern])?.name ?? "?"), writes so far \(img[.writes]))")

        var budget = 0.0
        var last = now()
        while true {
            if let verdict = SelfCheckPriority.idle({ core.serviceVerifyRequest() }) {
                log("\(name): self-check #\(img[.verifyDone]) after resume \(img[.resumes]): \(verdict)")
                last = now()
            }
            let rate = Double(img[.rate])
            let t = now()
            budget += rate * min(t - last, 0.002)  // time spent stopped is not caught up
            last = t
            var n = Int(budget)
            budget -= Double(n)
            while n > 0 { core.writeOne(); n -= 1 }
            var ts = timespec(tv_sec: 0, tv_nsec: rate > 0 ? 100_000 : 5_000_000)
            nanosleep(&ts, nil)
        }
    }

    /// A guest holds nothing of the process that started it (sockets, pipes): otherwise a parent
    /// waiting for its own child's descriptors to close would wait for the VM's whole life.
    func closeInheritedDescriptors() {
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in fds where fd > 2 { close(fd) }
    }

    func now() -> Double { MonotonicClock.now() }

    func log(_ s: String) {
        FileHandle.standardError.write(Data("[\(Date())] \(s)\n".utf8))
    }
}

SimGuest.main()

/// The self-check reads the whole image right after a resume — on a test host that is also the
/// source and destination agent, at the instant they finish the hand-off. It is the tests'
/// instrument, not the guest's work: it runs at SCHED_IDLE so it never takes a CPU from the
/// agents it checks (it still runs at once on an otherwise idle CPU), then the guest's policy is
/// restored.
enum SelfCheckPriority {
    static func idle<T>(_ body: () -> T) -> T {
        var idle = sched_param(sched_priority: 0)
        let lowered = sched_setscheduler(0, 5 /* SCHED_IDLE: Glibc hides it without _GNU_SOURCE */, &idle) == 0
        defer {
            var normal = sched_param(sched_priority: 0)
            if lowered { _ = sched_setscheduler(0, SCHED_OTHER, &normal) }
        }
        return body()
    }
}
