import Foundation
import PalmHypervisor
import PalmSupport

/// Hosts in their own network namespaces, joined by a bridge in the root namespace where the
/// coordinator listens: each host runs `palm-source serve` and `palm-dest serve` over its own
/// address and its own sim root. Addresses are 10.213.N.0/24, assigned here; nothing leaves them.
public final class NetnsCluster: @unchecked Sendable {
    public struct Host {
        public let index: Int
        public let name: String
        public let namespace: String
        public let address: String
        public let root: String
        public let dir: String
        public var hypervisor: SimHypervisor {
            get throws { try SimHypervisor(root: root, memoryLimitBytes: 1 << 40, guestBinary: SimCluster.bin("palm-simguest")) }
        }
    }

    public let pki = TestPKI.shared
    public let tag: String
    public let bridge: String
    public let bridgeAddress: String
    public private(set) var hosts: [Host] = []
    public private(set) var coordinator: CoordinatorProcess!
    /// With `coordinators: 2`: both, sharing the PostgreSQL database `stateURL` (the first is
    /// ``coordinator``); each on its own address of the bridge, port 7400, its own certificate.
    public private(set) var coordinators: [CoordinatorProcess] = []
    /// HOST:PORT of each coordinator, in ``coordinators``' order (what `--server` lists).
    public var coordinatorEndpoints: [String] {
        coordinators.count > 1 ? coordinatorAddresses.map { "\($0):7400" } : ["\(bridgeAddress):\(coordinator.port)"]
    }
    private var coordinatorAddresses: [String] = []
    /// Each coordinator's certificate (PEM path), in ``coordinators``' order: every agent and
    /// every coordinator lists them all.
    public private(set) var coordinatorCertificates: [String] = []
    /// The agents by "host/which" (which: "source" or "dest").
    private var agents: [String: Process] = [:]
    private static let instances = LockedValueBox(0)
    private var mounts: [String] = []
    private let dir: String

    /// Creates the namespaces, certificates, configurations and the coordinator (not started).
    /// `coordinatorExtra` adds tables to coordinator.toml (e.g. `[tickets]`).
    public init(hosts count: Int, memoryLimit: String, scheduler: String, coordinatorExtra: String = "",
                coordinators coordinatorCount: Int = 1, stateURL: String? = nil, metrics: Bool = false, leaseSeconds: Int = 1) throws {
        // Several clusters can run at once (suites in parallel, other test processes): each claims
        // a number by creating its bridge, which fails if another holds it.
        var claimed: Int?
        let start = Int(getpid()) &+ NetnsCluster.instances.withLockedValue { n in n += 1; return n * 37 }
        for k in 0..<230 {
            let n = (start + k) % 230 + 20
            if (try? ProcessRunner.run("/usr/sbin/ip", ["link", "add", "palmbr\(n)", "type", "bridge"]))?.status == 0 {
                claimed = n
                break
            }
        }
        guard let n = claimed else { throw SimClusterError.command("no free palmbrN bridge number for a network-namespace cluster") }
        tag = "p\(n)"
        bridge = "palmbr\(n)"
        bridgeAddress = "10.213.\(n).1"
        dir = NSTemporaryDirectory() + "palm-netns-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // Namespaces a crashed run left under this number go.
        for i in 1...max(count, 1) { _ = try? ProcessRunner.run("/usr/sbin/ip", ["netns", "del", "palm-\(tag)-h\(i)"]) }
        try ip("addr", "add", "\(bridgeAddress)/24", "dev", bridge)
        try ip("link", "set", bridge, "up")
        coordinatorAddresses = (1...max(coordinatorCount, 1)).map { "10.213.\(n).\($0)" }
        for extra in coordinatorAddresses.dropFirst() { try ip("addr", "add", "\(extra)/24", "dev", bridge) }
        let coordCerts = coordinatorAddresses.indices.map { coordinatorCount > 1 ? "coordha\($0 + 1)-\(tag)" : "coord-\(tag)" }
        for (cert, address) in zip(coordCerts, coordinatorAddresses) { try pki.mintHost(cert, ip: address, role: "coordinator") }
        coordinatorCertificates = coordCerts.map { pki.cert($0) }
        let certList = "[" + coordinatorCertificates.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        var configs: [String] = []
        for i in 1...count {
            let name = "h\(i)-\(tag)", ns = "palm-\(tag)-h\(i)", address = "10.213.\(n).\(10 + i)"
            try ip("netns", "add", ns)
            try ip("link", "add", "\(tag)h\(i)", "type", "veth", "peer", "name", "eth0", "netns", ns)
            try ip("link", "set", "\(tag)h\(i)", "master", bridge)
            try ip("link", "set", "\(tag)h\(i)", "up")
            try ip("-n", ns, "addr", "add", "\(address)/24", "dev", "eth0")
            try ip("-n", ns, "link", "set", "eth0", "up")
            try ip("-n", ns, "link", "set", "lo", "up")
            try pki.mintHost(name, ip: address)
            let host = Host(index: i, name: name, namespace: ns, address: address, root: "/dev/shm/palm-\(tag)-h\(i)-\(UUID().uuidString.prefix(4))",
                            dir: "\(dir)/h\(i)")
            try FileManager.default.createDirectory(atPath: host.dir, withIntermediateDirectories: true)
            let common = """
            [tls]
            certificate = "\(pki.cert(name))"
            key = "\(pki.key(name))"
            ca = "\(pki.caCert)"
            [hypervisor]
            driver = "sim"
            [sim]
            root = "\(host.root)"
            memory_limit = "\(memoryLimit)"

            """
            try (common + """
            [listen]
            address = "\(address)"
            port = 7410
            [security]
            coordinator_certificates = \(certList)
            [state]
            directory = "\(host.dir)/dest-state"
            \(metrics ? "[metrics]\nlisten = \"\(address):\(NetnsCluster.metricsPort["dest"] ?? 0)\"" : "")
            """).write(toFile: host.dir + "/dest.toml", atomically: true, encoding: .utf8)
            try (common + """
            [state]
            directory = "\(host.dir)/source-state"
            [coordinator]
            \(coordinatorCount > 1 ? "endpoints = [\(coordinatorAddresses.map { "\"\($0):7400\"" }.joined(separator: ", "))]" : "address = \"\(bridgeAddress):PORT\"")
            certificates = \(certList)
            advertise = "\(address):7410"
            \(metrics ? "[metrics]\nlisten = \"\(address):\(NetnsCluster.metricsPort["source"] ?? 0)\"" : "")
            """).write(toFile: host.dir + "/source.toml", atomically: true, encoding: .utf8)
            configs.append(host.dir + "/dest.toml")
            hosts.append(host)
        }
        // The coordinator distributes exactly what the destinations measure.
        var agentsAllowed = Set<String>(), configsAllowed = Set<String>(), hypervisors = Set<String>()
        for c in configs {
            let r = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["measure", "--config", c])
            guard r.status == 0 else { throw SimClusterError.command("palm-dest measure: \(r.stderr)") }
            for line in r.stdout.split(separator: "\n") {
                let value = line.split(separator: "\"").dropFirst().first.map(String.init) ?? ""
                if line.hasPrefix("allowed_agents") { agentsAllowed.insert(value) }
                if line.hasPrefix("allowed_configs") { configsAllowed.insert(value) }
                if line.hasPrefix("allowed_hypervisors") { hypervisors.insert(value) }
            }
        }
        func list(_ s: Set<String>) -> String { "[" + s.sorted().map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        let state = stateURL.map { "backend = \"postgresql\"\nurl = \"\($0)\"\nlease_s = \(leaseSeconds)\ncoordinator_certificates = \(certList)\n" } ?? ""
        let tables = """
            [agents]
            heartbeat_interval_s = 0.2
            host_timeout_s = 10
            [scheduler]
            interval_s = 0.3
            \(scheduler)
            [attestation]
            require = "software"
            allowed_agents = \(list(agentsAllowed))
            allowed_configs = \(list(configsAllowed))
            allowed_hypervisors = \(list(hypervisors))
            \(coordinatorExtra)
            """
        for (k, address) in coordinatorAddresses.enumerated() {
            let listen = coordinatorCount > 1 ? "advertise = \"\(address):7400\"\n" : ""
            let c = try CoordinatorProcess(pki: pki, address: address, port: coordinatorCount > 1 ? 7400 : 0, cert: coordCerts[k],
                                           state: state,
                                           extra: tables + (metrics ? "\n[metrics]\nlisten = \"\(address):\(NetnsCluster.metricsPort["coordinator"] ?? 0)\"\n" : ""),
                                           listenExtra: listen)
            if k == 0 { coordinator = c }
            coordinators.append(c)
        }
    }

    deinit { shutdown() }

    /// With `metrics: true`, where each daemon serves `/metrics` (on its host's or coordinator's address).
    public static let metricsPort = ["source": 9464, "dest": 9465, "coordinator": 9466]

    /// Scrapes `/metrics` of a host's agent ("source", "dest") or, with `host` nil, of the first
    /// coordinator, with curl; the exposition is parsed strictly.
    public func scrape(_ host: Host?, _ agent: String = "coordinator") throws -> PrometheusText {
        let address = host?.address ?? coordinatorAddresses[0]
        let r = try ProcessRunner.run("/usr/bin/curl", ["-sS", "--fail", "--max-time", "5",
                                                       "http://\(address):\(NetnsCluster.metricsPort[agent] ?? 0)/metrics"])
        guard r.status == 0 else { throw SimClusterError.command("curl \(agent) metrics: \(r.stderr)") }
        return try PrometheusText(r.stdout)
    }

    /// The TCP ports something listens on inside a host's namespace.
    public func listeningPorts(_ host: Host) throws -> Set<Int> {
        let r = try ProcessRunner.run("/usr/sbin/ip", ["netns", "exec", host.namespace, "ss", "-Hltn"])
        guard r.status == 0 else { throw SimClusterError.command("ss: \(r.stderr)") }
        return Set(r.stdout.split(separator: "\n").compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first?.split(separator: ":").last.flatMap { Int($0) }
        })
    }

    /// Starts the coordinator, then both agents on every host.
    public func start() throws {
        for c in coordinators { try c.start() }
        for host in hosts {
            let path = host.dir + "/source.toml"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            try text.replacingOccurrences(of: ":PORT\"", with: ":\(coordinator.port)\"").write(toFile: path, atomically: true, encoding: .utf8)
            try startAgent(host, "dest")
            try startAgent(host, "source")
        }
        // Every host has reported once (a test that orders a move to a host the coordinator has not
        // heard of yet gets "no host named …"): what an operator sees in `hosts` before acting.
        let registered = self.await(60) {
            guard let r = try? cli(["hosts", "--json"]), r.status == 0,
                  let rows = try? JSONDecoder().decode([[String: String]].self, from: Data(r.stdout.utf8)) else { return false }
            return Set(rows.compactMap { $0["host"] }).isSuperset(of: hosts.map(\.name))
        }
        guard registered else { throw SimClusterError.command("not every host reported to the coordinator within 60 s") }
    }

    /// Starts (or restarts) one agent of a host: `which` is "source" or "dest".
    public func startAgent(_ host: Host, _ which: String) throws {
        killAgent(host, which)
        agents["\(host.name)/\(which)"] = try spawn(host, ["palm-\(which)", "serve", "--config", "\(host.dir)/\(which).toml"],
                                                    log: "\(host.dir)/\(which).log")
    }

    /// kill -9 of one agent.
    public func killAgent(_ host: Host, _ which: String) {
        guard let p = agents.removeValue(forKey: "\(host.name)/\(which)"), p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Takes a host's link to the bridge down (no packet passes either way) or back up.
    public func setLink(_ host: Host, up: Bool) throws {
        try ip("link", "set", "\(tag)h\(host.index)", up ? "up" : "down")
    }

    /// Shapes every host's link with a tbf qdisc in both directions (this kernel has no netem), so
    /// a migration lasts long enough for a fault to land inside it.
    public func shapeLinks(rate: String) throws {
        for host in hosts {
            try tc(nil, "qdisc", "replace", "dev", "\(tag)h\(host.index)", "root", "tbf", "rate", rate, "burst", "64kb", "latency", "50ms")
            try tc(host.namespace, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "64kb", "latency", "50ms")
        }
    }

    private func tc(_ namespace: String?, _ args: String...) throws {
        let r = try namespace.map { try ProcessRunner.run("/usr/sbin/ip", ["netns", "exec", $0, "/usr/sbin/tc"] + args) }
            ?? ProcessRunner.run("/usr/sbin/tc", args)
        guard r.status == 0 else { throw SimClusterError.command("tc \(args.joined(separator: " ")): \(r.stderr)") }
    }

    /// Puts every host's palm-dest state directory on a tmpfs of `size` (before `start`), so a
    /// test can fill it.
    public func smallStateDisks(size: String) throws {
        for host in hosts {
            let path = host.dir + "/dest-state"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let r = try ProcessRunner.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path])
            guard r.status == 0 else { throw SimClusterError.command("mount: \(r.stderr)") }
            mounts.append(path)
        }
    }

    /// Fills (or empties again) a host's palm-dest state disk.
    public func fillStateDisk(_ host: Host, full: Bool) {
        let filler = host.dir + "/dest-state/filler"
        if full {
            _ = try? ProcessRunner.run("/usr/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k", "count=100000"])
        } else {
            try? FileManager.default.removeItem(atPath: filler)
        }
    }

    private func spawn(_ host: Host, _ command: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "exec", host.namespace, SimCluster.bin(command[0])] + command.dropFirst()
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try handle.seekToEnd()  // a restarted agent appends to what it logged before
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }

    /// What an agent logged so far (for failure messages).
    public func agentLog(_ host: Host, _ which: String) -> String {
        (try? String(contentsOfFile: "\(host.dir)/\(which).log", encoding: .utf8)) ?? ""
    }

    /// Runs an operator command as alice against the coordinator.
    public func cli(_ args: [String], as who: String = "alice", servers: [String]? = nil) throws -> ProcessRunner.Result {
        try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args + [
            "--server", (servers ?? coordinatorEndpoints).joined(separator: ","), "--cert", pki.cert(who), "--key", pki.key(who), "--ca", pki.caCert])
    }

    /// A sim VM on `host` (before or after the agents start; they report it).
    public func createVM(_ vm: String, on host: Host, memory: String = "128M", rate: Int = 2000) throws {
        let r = try ProcessRunner.run(SimCluster.bin("palm-simguest"),
                                      ["create", vm, "--root", host.root, "--memory", memory, "--rate", "\(rate)"])
        guard r.status == 0 else { throw SimClusterError.command("palm-simguest create: \(r.stderr)") }
    }

    /// `status ID --json`.
    public func status(_ id: String) throws -> String { try cli(["status", id, "--json"]).stdout }

    /// Waits (bounded) until migration `id` ended; true when it ended committed.
    public func awaitCommitted(_ id: String, timeout: Double = 120) throws -> Bool {
        _ = try self.await(timeout) {
            let s = try status(id)
            return ["committed", "aborted", "cancelled"].contains { s.contains("\"state\" : \"\($0)\"") }
        }
        return try status(id).contains("\"state\" : \"committed\"")
    }

    /// `migrate VM --to HOST --json`: the new migration's id.
    public func requestMigration(_ vm: String, to host: Host) throws -> String {
        let r = try cli(["migrate", vm, "--to", host.name, "--json"])
        guard let id = (try? JSONDecoder().decode([[String: String]].self, from: Data(r.stdout.utf8)))?.first?["id"] else {
            throw SimClusterError.command("migrate \(vm): \(r.stderr)")
        }
        return id
    }

    /// `vms --json` as a VM → host map.
    public func placement() throws -> [String: String] {
        let r = try cli(["vms", "--json"])
        guard r.status == 0 else { throw SimClusterError.command("vms: \(r.stderr)") }
        let rows = try JSONDecoder().decode([[String: String]].self, from: Data(r.stdout.utf8))
        return Dictionary(rows.compactMap { row in row["vm"].flatMap { v in row["host"].map { (v, $0) } } }, uniquingKeysWith: { a, _ in a })
    }

    /// Polls `condition` every 100 ms until it holds or `timeout` passes.
    public func await(_ timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        try NetnsCluster.poll(timeout, condition)
    }

    /// Polls `condition` (state owned by other processes: files, a database) every 100 ms until
    /// it holds or `timeout` passes.
    public static func poll(_ timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return try condition()
    }

    /// Where `vm`'s guest process runs now (every host checked).
    public func runningOn(_ vm: String) throws -> [String] {
        try hosts.filter { try $0.hypervisor.guestPID(vm: vm) != nil }.map(\.name)
    }

    public func shutdown() {
        for p in agents.values where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        agents = [:]
        for m in mounts { _ = try? ProcessRunner.run("/usr/bin/umount", ["-l", m]) }
        mounts = []
        for c in coordinators { c.kill() }
        for host in hosts {
            if let h = try? host.hypervisor { for vm in (try? h.listVMs()) ?? [] { try? h.destroy(vm: vm.name) } }
            try? FileManager.default.removeItem(atPath: host.root)
        }
        teardownNetwork(hosts.count)
        hosts = []
    }

    private func teardownNetwork(_ count: Int) {
        for i in 1...max(count, 1) { _ = try? ProcessRunner.run("/usr/sbin/ip", ["netns", "del", "palm-\(tag)-h\(i)"]) }
        _ = try? ProcessRunner.run("/usr/sbin/ip", ["link", "del", bridge])
    }

    private func ip(_ args: String...) throws {
        let r = try ProcessRunner.run("/usr/sbin/ip", args)
        guard r.status == 0 else { throw SimClusterError.command("ip \(args.joined(separator: " ")): \(r.stderr)") }
    }
}
