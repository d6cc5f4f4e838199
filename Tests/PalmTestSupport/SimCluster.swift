import Foundation
import PalmHypervisor
import PalmMigration
import PalmTLS
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// A two-host palm cluster on this machine for end-to-end tests: real `palm-dest` and
/// `palm-source` processes talking PalmTLS over loopback, each "host" with its own sim root,
/// certificates minted by certs/palm-ca.
public final class SimCluster: @unchecked Sendable {
    public let dir: String
    public let sourceRoot: String
    public let destRoot: String
    public let pki = TestPKI.shared
    public private(set) var destProcess: Process?
    public private(set) var destPort: UInt16 = 0
    /// palm-dest's log, appended by a reader thread; waiters are woken on every new chunk.
    private let logCondition = NSCondition()
    private var logText = ""
    private var logClosed = false

    /// The directory holding the built executables (next to the test bundle).
    public static let binDir: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("palm-dest").path) {
            url = url.deletingLastPathComponent()
        }
        return url.path
    }()

    public static func bin(_ name: String) -> String { binDir + "/" + name }

    /// The destination's certificate name in TestPKI (its identity in tickets).
    public let destCert: String

    /// `destListen` adds keys to the destination's `[listen]` table (e.g. "max_concurrent = 1"),
    /// `destAttestation` makes its `[attestation]` table (a TPM: ``MeasuredHost/destinationTable``),
    /// `sourceAttestation` adds keys to the source's (e.g. its `platform_policy`). `destKeyInTPM`:
    /// the destination's TLS key is its TPM's (`tls.key = "tpm"`; `destCert` must be for it).
    public init(destMemoryLimit: String = "8G", destCert: String = "server", allowlist: String? = nil, destListen: String = "",
                destAttestation: String = "", sourceAttestation: String = "", destKeyInTPM: Bool = false) throws {
        let id = UUID().uuidString.prefix(8)
        self.destCert = destCert
        dir = NSTemporaryDirectory() + "palm-cluster-\(id)"
        sourceRoot = "/dev/shm/palm-test-\(id)-a"
        destRoot = "/dev/shm/palm-test-\(id)-b"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try write("dest.toml", config(cert: destCert, keyInTPM: destKeyInTPM, root: destRoot, limit: destMemoryLimit, listen: true,
                                      listenExtra: destListen)
                  + (destAttestation.isEmpty ? "" : "\n[attestation]\n" + destAttestation + "\n"))
        // The source allows exactly what the destination measures (palm-dest measure), unless told otherwise.
        let measured = try allowlist ?? {
            let r = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["measure", "--config", dir + "/dest.toml"])
            guard r.status == 0 else { throw SimClusterError.command("palm-dest measure: \(r.stderr)") }
            return r.stdout
        }()
        try write("source.toml", config(cert: "client", root: sourceRoot, limit: "8G", listen: false)
                  + "\n[attestation]\n" + measured + "\n" + sourceAttestation + "\n")
    }

    deinit { shutdown() }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }

    private func config(cert: String, keyInTPM: Bool = false, root: String, limit: String, listen: Bool, listenExtra: String = "") -> String {
        var s = """
        [tls]
        certificate = "\(pki.cert(cert))"
        key = "\(keyInTPM ? "tpm" : pki.key(cert))"
        ca = "\(pki.caCert)"

        [hypervisor]
        driver = "sim"

        [sim]
        root = "\(root)"
        memory_limit = "\(limit)"

        """
        if listen {
            s += "\n[listen]\naddress = \"127.0.0.1\"\nport = 0\n" + listenExtra + "\n"
            s += "\n[security]\ncoordinator_certificate = \"\(pki.cert("coord"))\"\n"
            s += "\n[state]\ndirectory = \"\(dir)/dest-state\"\n"
        } else {
            s += "\n[state]\ndirectory = \"\(dir)/source-state\"\n"
            s += "\n[migration]\nresolve_timeout_s = 30\n"
        }
        return s
    }

    public var sourceConfig: String { dir + "/source.toml" }
    public var destConfig: String { dir + "/dest.toml" }

    public func sourceHypervisor() throws -> SimHypervisor { try SimHypervisor(root: sourceRoot, memoryLimitBytes: 8 << 30, guestBinary: SimCluster.bin("palm-simguest")) }
    public func destHypervisor() throws -> SimHypervisor { try SimHypervisor(root: destRoot, memoryLimitBytes: 8 << 30, guestBinary: SimCluster.bin("palm-simguest")) }

    /// Starts palm-dest and waits for its "listening on" line. With `samePort`, it listens on the
    /// port the previous instance used (a restarted daemon), and `environment` adds variables.
    /// `prefix` runs palm-dest under a wrapper (e.g. ``JournalCapture/command(_:)``); with
    /// `journalStderr` its stderr is announced as the journal stream (`JOURNAL_STREAM`).
    public func startDest(samePort: Bool = false, environment: [String: String] = [:],
                          prefix: ((_ argv: [String]) -> [String])? = nil, journalStderr: Bool = false) throws {
        if samePort {
            let text = try String(contentsOfFile: destConfig, encoding: .utf8)
            try text.replacingOccurrences(of: "port = 0", with: "port = \(destPort)")
                .write(toFile: destConfig, atomically: true, encoding: .utf8)
        }
        let p = Process()
        let argv = [SimCluster.bin("palm-dest"), "serve", "--config", destConfig]
        let command = prefix?(argv) ?? argv
        p.executableURL = URL(fileURLWithPath: command[0])
        p.arguments = Array(command.dropFirst())
        let out = Pipe()
        p.standardOutput = out
        let err = Pipe()
        p.standardError = err
        var env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if journalStderr { env["JOURNAL_STREAM"] = journalStream(of: err) }
        p.environment = env
        Thread { [self] in
            while true {
                let chunk = err.fileHandleForReading.availableData
                logCondition.lock()
                if chunk.isEmpty { logClosed = true } else { logText += String(decoding: chunk, as: UTF8.self) }
                logCondition.broadcast()
                logCondition.unlock()
                if chunk.isEmpty { break }
            }
        }.start()
        try p.run()
        destProcess = p
        var text = ""
        while !text.contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { throw SimClusterError.destDidNotStart(destLog) }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let port = text.split(separator: ":").last.flatMap({ UInt16($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
            throw SimClusterError.destDidNotStart(text)
        }
        destPort = port
    }

    public var destLog: String {
        logCondition.lock()
        defer { logCondition.unlock() }
        return logText
    }

    /// Blocks until palm-dest has logged `marker` (false if it exited or `timeout` passed first).
    public func waitForDestLog(_ marker: String, timeout: Double = 60) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        logCondition.lock()
        defer { logCondition.unlock() }
        while !logText.contains(marker) {
            if logClosed || !logCondition.wait(until: deadline) { return logText.contains(marker) }
        }
        return true
    }

    public func killDest() {
        if let p = destProcess, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
    }

    /// Creates a VM on the source host (palm-simguest create).
    public func createVM(_ name: String, memory: String, rate: Int = 0, pattern: String = "uniform",
                         workingSet: String? = nil, fill: String = "random") throws {
        var args = ["create", name, "--root", sourceRoot, "--memory", memory, "--rate", "\(rate)", "--pattern", pattern, "--fill", fill]
        if let workingSet { args += ["--working-set", workingSet] }
        let r = try ProcessRunner.run(SimCluster.bin("palm-simguest"), args)
        guard r.status == 0 else { throw SimClusterError.command("palm-simguest create: \(r.stderr)") }
    }

    /// A running palm-source migrate whose stderr can be watched (for fault injection).
    public final class Migration: @unchecked Sendable {
        public let process: Process
        let stdout: Pipe
        let stderr: Pipe
        private var errText = ""
        init(process: Process, stdout: Pipe, stderr: Pipe) {
            self.process = process
            self.stdout = stdout
            self.stderr = stderr
        }

        /// What the process has written to stderr so far (for an expectation's message).
        public var stderrSoFar: String { errText }

        /// Reads stderr until a line contains `marker` (false if the process ended first).
        public func waitFor(_ marker: String) -> Bool {
            while !errText.contains(marker) {
                let chunk = stderr.fileHandleForReading.availableData
                if chunk.isEmpty { return false }
                errText += String(decoding: chunk, as: UTF8.self)
            }
            return true
        }

        /// Waits for exit; returns (status, stdout, stderr).
        public func finish() -> (Int32, String, String) {
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            errText += String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: out, as: UTF8.self), errText)
        }
    }

    /// Issues a ticket with `palm-coordinator ticket issue` and returns its path.
    public func issueTicket(_ vm: String, memoryBytes: UInt64? = nil, source: String = "client", dest: String? = nil,
                            key: String? = nil, validity: Int = 300, epoch: UInt64 = 0) throws -> String {
        let bytes = try memoryBytes ?? (try sourceHypervisor().openImage(vm: vm).layout.pageCount * 4096)
        let path = dir + "/ticket-\(vm)-\(UUID().uuidString.prefix(6))"
        let r = try ProcessRunner.run(SimCluster.bin("palm-coordinator"), [
            "ticket", "issue", "--key", key ?? pki.key("coord"), "--vm", vm, "--memory", "\(bytes)",
            "--source-cert", pki.cert(source), "--dest-cert", pki.cert(dest ?? destCert),
            "--validity", "\(validity)", "--epoch", "\(epoch)", "--out", path])
        guard r.status == 0 else { throw SimClusterError.command("ticket issue: \(r.stderr)") }
        return path
    }

    public func startMigration(_ vm: String, ticket: String? = nil, port: UInt16? = nil, extra: [String] = [],
                               environment: [String: String] = [:]) throws -> Migration {
        let ticketPath = try ticket ?? issueTicket(vm)
        let p = Process()
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        p.executableURL = URL(fileURLWithPath: SimCluster.bin("palm-source"))
        p.arguments = ["migrate", vm, "--to", "127.0.0.1:\(port ?? destPort)", "--config", sourceConfig,
                       "--ticket", ticketPath] + extra
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return Migration(process: p, stdout: out, stderr: err)
    }

    /// Runs a migration to the end and decodes its JSON report.
    public func migrate(_ vm: String, ticket: String? = nil, extra: [String] = []) throws -> MigrationReport {
        let (status, out, err) = try startMigration(vm, ticket: ticket, extra: extra + ["--json"]).finish()
        guard status == 0 else { throw SimClusterError.migrationFailed(status: status, stderr: err + "\n--- dest ---\n" + destLog) }
        return try JSONDecoder().decode(MigrationReport.self, from: Data(out.utf8))
    }

    /// Waits (bounded) until the kernel reports `pid` stopped — an agent that logged its fault
    /// point may not have executed its SIGSTOP yet, and a SIGCONT sent before it would be lost.
    public static func waitUntilStopped(_ pid: Int32, timeout: Double = 10) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
               let close = stat.lastIndex(of: ")"),
               let state = stat[stat.index(after: close)...].drop(while: { $0 == " " }).first,
               state == "T" || state == "t" {
                return true
            }
            sched_yield()
        }
        return false
    }

    /// Runs `palm-source recover` (what a restarted source agent does first).
    public func recoverSource() throws -> ProcessRunner.Result {
        try ProcessRunner.run(SimCluster.bin("palm-source"), ["recover", "--config", sourceConfig])
    }

    public var destPID: Int32? { destProcess?.processIdentifier }

    /// How many copies of `vm` run (source + destination).
    public func runningCopies(_ vm: String) throws -> (source: Bool, dest: Bool) {
        (try sourceHypervisor().guestPID(vm: vm) != nil, try destHypervisor().guestPID(vm: vm) != nil)
    }

    /// The image digest of a VM's memory as it is in the image file now.
    public static func digest(of image: SimImage) throws -> Digest32 {
        let ram = try image.mapAllRAM()
        return ImageDigest.of(pageCount: image.layout.pageCount, pageSize: SimLayout.pageSize) { pfn in
            UnsafeRawBufferPointer(start: ram + Int(pfn) * SimLayout.pageSize, count: SimLayout.pageSize)
        }
    }

    /// Files in a sim root.
    public func files(inRoot root: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
    }

    public func shutdown() {
        killDest()
        for root in [sourceRoot, destRoot] {
            if let h = try? SimHypervisor(root: root, memoryLimitBytes: 1) {
                for vm in (try? h.listVMs()) ?? [] { try? h.destroy(vm: vm.name) }
            }
            try? FileManager.default.removeItem(atPath: root)
        }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

public enum SimClusterError: Error, CustomStringConvertible {
    case destDidNotStart(String)
    case command(String)
    case migrationFailed(status: Int32, stderr: String)
    public var description: String {
        switch self {
        case let .destDidNotStart(s): return "palm-dest did not start: \(s)"
        case let .command(s): return s
        case let .migrationFailed(status, stderr): return "palm-source exited \(status): \(stderr)"
        }
    }
}
