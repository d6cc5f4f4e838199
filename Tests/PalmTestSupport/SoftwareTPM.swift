import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A software TPM 2.0 for one test host: Debian's swtpm, manufactured by `swtpm_setup` with an
/// RSA endorsement key and its certificate from a local CA of this test's own (the "TPM
/// manufacturer"), served on a Unix socket. `tcti` is what palm's configuration names.
///
/// Each instance has its own state and CA directory under /tmp; ``stop()`` (or deinit) ends the
/// daemon and removes them. Two instances made with the same `manufacturer` share its CA.
public final class SoftwareTPM: @unchecked Sendable {
    public let directory: String
    public let manufacturer: SoftwareTPMManufacturer
    private let pidFile: String
    private var stopped = false

    public var socket: String { directory + "/tpm.sock" }
    public var tcti: String { "swtpm:path=\(socket)" }

    public init(manufacturer: SoftwareTPMManufacturer? = nil) throws {
        directory = NSTemporaryDirectory() + "palm-tpm-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/state", withIntermediateDirectories: true)
        self.manufacturer = try manufacturer ?? SoftwareTPMManufacturer()
        pidFile = directory + "/swtpm.pid"
        let setup = try ProcessRunner.run("/usr/bin/swtpm_setup", [
            "--tpm2", "--tpmstate", directory + "/state", "--create-ek-cert", "--lock-nvram", "--overwrite",
            "--config", self.manufacturer.setupConfig,
        ])
        guard setup.status == 0 else { throw SimClusterError.command("swtpm_setup: \(setup.stdout)\(setup.stderr)") }
        try start()
    }

    /// Starts (or restarts: a power cycle, the reset count goes up) the TPM daemon.
    public func start() throws {
        let run = try ProcessRunner.run("/usr/bin/swtpm", [
            "socket", "--tpm2", "--tpmstate", "dir=\(directory)/state",
            "--server", "type=unixio,path=\(socket)", "--ctrl", "type=unixio,path=\(socket).ctrl",
            "--flags", "not-need-init,startup-clear", "--daemon", "--pid", "file=\(pidFile)",
        ])
        guard run.status == 0 else { throw SimClusterError.command("swtpm: \(run.stderr)") }
        stopped = false
    }

    /// Cuts the TPM's power (state is kept: ``start()`` brings the same TPM back, rebooted).
    public func halt() {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return }
        // SIGKILL: a power cut (and the test process's threads may block SIGTERM, which the
        // daemon would inherit).
        kill(pid, SIGKILL)
        // Gone, or a zombie nobody reaps (its parent exited when it became a daemon).
        func running() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
            return !stat.contains(") Z ")
        }
        let deadline = Date(timeIntervalSinceNow: 10)
        while running(), Date() < deadline { usleep(10_000) }
        unlink(socket)
        unlink(socket + ".ctrl")
    }

    private var pid: Int32? {
        (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Stops the TPM answering (SIGSTOP): connections are accepted, commands never answered.
    public func freeze() { pid.map { _ = kill($0, SIGSTOP) } }
    public func thaw() { pid.map { _ = kill($0, SIGCONT) } }

    /// Ends the daemon and removes its state.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        halt()
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }
}

/// A TPM manufacturer for tests: swtpm's local CA in a directory of its own, whose root
/// certificate plays the TPM vendor's CA a coordinator trusts (or, for another instance, the CA
/// of a vendor it does not).
public final class SoftwareTPMManufacturer: @unchecked Sendable {
    public let directory: String
    public var setupConfig: String { directory + "/swtpm_setup.conf" }
    /// The CA certificates an operator would configure: the root and the issuing CA.
    public var caCertificates: [String] { [directory + "/ca/swtpm-localca-rootca-cert.pem", directory + "/ca/issuercert.pem"] }

    public init() throws {
        directory = NSTemporaryDirectory() + "palm-tpmca-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory + "/ca", withIntermediateDirectories: true)
        try """
        statedir = \(directory)/ca
        signingkey = \(directory)/ca/signkey.pem
        issuercert = \(directory)/ca/issuercert.pem
        certserial = \(directory)/ca/certserial
        """.write(toFile: directory + "/localca.conf", atomically: true, encoding: .utf8)
        try """
        create_certs_tool = /usr/bin/swtpm_localca
        create_certs_tool_config = \(directory)/localca.conf
        create_certs_tool_options = /etc/swtpm-localca.options
        active_pcr_banks = sha256
        """.write(toFile: setupConfig, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}
