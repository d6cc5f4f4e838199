import Foundation
import PalmTLS

/// Certificates minted with the project's own certs/palm-ca into a temporary directory, once
/// per test process. Two CAs: the cluster CA and an unrelated "other" CA.
public final class TestPKI: @unchecked Sendable {
    public static let shared: TestPKI = {
        do { return try TestPKI() } catch { fatalError("cannot mint test certificates: \(error)") }
    }()

    public static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    public static let palmCA = repoRoot.appendingPathComponent("certs/palm-ca").path

    public let dir: String
    public var ca: String { dir + "/ca" }
    public var otherCA: String { dir + "/other-ca" }
    public var caCert: String { ca + "/ca.pem" }
    public var crl: String { ca + "/crl.pem" }

    public init() throws {
        dir = NSTemporaryDirectory() + "palm-pki-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try ca("--dir", ca, "init")
        try ca("--dir", otherCA, "init", "--name", "some other CA")
        try ca("--dir", ca, "host", "server", "--dns", "localhost", "--ip", "127.0.0.1")
        try ca("--dir", ca, "host", "client")
        try ca("--dir", ca, "host", "coord", "--role", "coordinator", "--ip", "127.0.0.1")
        try ca("--dir", ca, "host", "coord2", "--role", "coordinator", "--ip", "127.0.0.1")
        try ca("--dir", ca, "operator", "alice", "--role", "operator")
        try ca("--dir", ca, "operator", "eve", "--role", "auditor")
        try ca("--dir", ca, "operator", "olivia", "--role", "admin")
        try ca("--dir", ca, "host", "expired", "--not-before", "20200101000000Z", "--not-after", "20210101000000Z")
        try ca("--dir", ca, "host", "future", "--not-before", "20990101000000Z", "--not-after", "20991231000000Z")
        try ca("--dir", ca, "host", "mallory", "--ip", "127.0.0.1")
        try ca("--dir", ca, "host", "revoked")
        try ca("--dir", ca, "revoke", "revoked")
        try ca("--dir", otherCA, "host", "intruder", "--ip", "127.0.0.1")
        try mintRSALeaf()
    }

    /// An RSA leaf signed by the cluster CA with the right usages: only its key type is wrong.
    private func mintRSALeaf() throws {
        let issued = ca + "/issued"
        try run("/usr/bin/openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", issued + "/rsa.key",
                "-subj", "/O=palm/CN=rsa", "-out", dir + "/rsa.csr")
        try "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:rsa,IP:127.0.0.1,URI:palm:role:agent\n"
            .write(toFile: dir + "/rsa.ext", atomically: true, encoding: .utf8)
        try run("/usr/bin/openssl", "x509", "-req", "-in", dir + "/rsa.csr", "-CA", caCert, "-CAkey", ca + "/ca.key",
                "-CAcreateserial", "-days", "30", "-extfile", dir + "/rsa.ext", "-out", issued + "/rsa.pem")
    }

    public func cert(_ name: String, other: Bool = false) -> String { (other ? otherCA : ca) + "/issued/\(name).pem" }
    public func key(_ name: String, other: Bool = false) -> String { (other ? otherCA : ca) + "/issued/\(name).key" }

    /// A configuration for `name`; `other` takes the certificate from the other CA while still
    /// trusting the cluster CA (an intruder who knows the public CA certificate).
    public func configuration(_ name: String, other: Bool = false, withCRL: Bool = false,
                       handshakeTimeout: Double = 10, ioTimeout: Double = 30) -> TLSConfiguration {
        TLSConfiguration(certificateChain: cert(name, other: other), privateKey: key(name, other: other),
                         trustRoots: caCert, crl: withCRL ? crl : nil,
                         connectTimeout: 5, handshakeTimeout: handshakeTimeout, ioTimeout: ioTimeout)
    }

    public func context(_ name: String, other: Bool = false, withCRL: Bool = false,
                 handshakeTimeout: Double = 10, ioTimeout: Double = 30) throws -> TLSContext {
        try TLSContext(configuration: configuration(name, other: other, withCRL: withCRL,
                                                    handshakeTimeout: handshakeTimeout, ioTimeout: ioTimeout))
    }

    /// Mints (once) a host certificate for `name` carrying `ip`, with `role`.
    public func mintHost(_ name: String, ip: String, role: String = "agent", moreIPs: [String] = []) throws {
        lock.lock()
        defer { lock.unlock() }
        guard !FileManager.default.fileExists(atPath: cert(name)) else { return }
        try run(TestPKI.palmCA, ["--dir", ca, "host", name, "--ip", ip, "--role", role] + moreIPs.flatMap { ["--ip", $0] })
    }
    private let lock = NSLock()

    /// Issues a host certificate for `name` (127.0.0.1, localhost) for the key of the certificate
    /// request `csr` — one made where the key lives (a TPM): no key file exists for it.
    public func mintHost(_ name: String, request csr: String) throws {
        lock.lock()
        defer { lock.unlock() }
        try run(TestPKI.palmCA, ["--dir", ca, "host", name, "--csr", csr, "--ip", "127.0.0.1", "--dns", "localhost"])
    }

    private func ca(_ args: String...) throws { try run(TestPKI.palmCA, args) }
    private func run(_ tool: String, _ args: String...) throws { try run(tool, args) }

    private func run(_ tool: String, _ args: [String]) throws {
        let result = try ProcessRunner.run(tool, args)
        guard result.status == 0 else {
            throw NSError(domain: "TestPKI", code: Int(result.status),
                          userInfo: [NSLocalizedDescriptionKey: "\(tool) \(args): \(result.stderr)"])
        }
    }
}

/// Runs a command to completion and captures its output: posix_spawn and waitpid on its own pid,
/// output through temporary files. (Foundation's Process missed the exit of children in this
/// test process now and then — a zombie, waitUntilExit forever — and a pipe never reaches
/// end-of-file while a daemon the command started, e.g. `pg_ctl start`'s server, holds it.)
public enum ProcessRunner {
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    public static func run(_ tool: String, _ args: [String], stdin: Data? = nil) throws -> Result {
        let base = NSTemporaryDirectory() + "palm-run-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let (inPath, outPath, errPath) = (base + ".in", base + ".out", base + ".err")
        defer { for p in [inPath, outPath, errPath] { unlink(p) } }
        try (stdin ?? Data()).write(to: URL(fileURLWithPath: inPath))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([tool] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, tool, &actions, nil, argv, environ)
        guard rc == 0 else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: tool, "errno": rc]) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exited, stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }
}

/// Runs a closure on its own thread (blocking I/O, like an agent's connection thread) and hands
/// back its result.
public final class Background<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Swift.Result<T, Error>?

    public init(_ body: @escaping () throws -> T) {
        // Runs once, on that thread only; the caller hands it over (tests pass closures over
        // their own non-Sendable state, as agents hand a connection to its thread).
        nonisolated(unsafe) let body = body
        let thread = Thread { [self] in
            result = Swift.Result { try body() }
            done.signal()
        }
        thread.start()
    }

    public func wait() -> Swift.Result<T, Error> {
        done.wait()
        return result!
    }

    public func value() throws -> T { try wait().get() }

    /// The error the closure threw, or nil if it returned.
    public var error: Error? {
        if case let .failure(e) = wait() { return e }
        return nil
    }
}
