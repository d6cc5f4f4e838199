import Foundation

/// A real `palm-coordinator serve` for tests: its configuration, its database, its stderr.
public final class CoordinatorProcess: @unchecked Sendable {
    public let dir: String
    public let database: String
    public let configPath: String
    public private(set) var process: Process?
    public private(set) var port: UInt16 = 0
    private let logLock = NSCondition()
    private var logText = ""

    /// `extra` is appended to the generated coordinator.toml (e.g. a `[scheduler]` table).
    /// `state` adds keys to its `[state]` table (e.g. a PostgreSQL backend).
    public init(pki: TestPKI, address: String = "127.0.0.1", port: UInt16 = 0, cert: String = "coord", withCRL: Bool = false,
                state: String = "", extra: String = "", listenExtra: String = "") throws {
        dir = NSTemporaryDirectory() + "palm-coordinator-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        database = dir + "/palm.sqlite"
        configPath = dir + "/coordinator.toml"
        try PalmPolicyText.shipped.write(toFile: dir + "/policy.toml", atomically: true, encoding: .utf8)
        try """
        [tls]
        certificate = "\(pki.cert(cert))"
        key = "\(pki.key(cert))"
        ca = "\(pki.caCert)"
        \(withCRL ? "crl = \"\(pki.crl)\"" : "")
        [listen]
        address = "\(address)"
        port = \(port)
        \(listenExtra)
        [state]
        database = "\(database)"
        \(state)
        [access]
        policy = "\(dir)/policy.toml"
        \(extra)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Starts it (again, on the same port and database when it ran before) and waits until it listens.
    public func start(prefix: [String] = []) throws {
        if port != 0 {
            let text = try String(contentsOfFile: configPath, encoding: .utf8)
            try text.replacingOccurrences(of: "port = 0\n", with: "port = \(port)\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        }
        let p = Process()
        let command = prefix + [SimCluster.bin("palm-coordinator"), "serve", "--config", configPath]
        p.executableURL = URL(fileURLWithPath: command[0])
        p.arguments = Array(command.dropFirst())
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        process = p
        Thread { [self] in
            while true {
                let chunk = err.fileHandleForReading.availableData
                logLock.lock()
                if chunk.isEmpty { logLock.broadcast(); logLock.unlock(); return }
                logText += String(decoding: chunk, as: UTF8.self)
                logLock.broadcast()
                logLock.unlock()
            }
        }.start()
        var text = ""
        while !text.contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let p = text.split(separator: ":").last.flatMap({ UInt16($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
            throw SimClusterError.command("palm-coordinator did not start: \(text) \(log)")
        }
        port = p
    }

    public var log: String { logLock.lock(); defer { logLock.unlock() }; return logText }

    /// Waits (bounded) until the daemon's stderr contains `marker`.
    public func waitForLog(_ marker: String, timeout: Double = 30) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        logLock.lock()
        defer { logLock.unlock() }
        while !logText.contains(marker) {
            if !logLock.wait(until: deadline) { return logText.contains(marker) }
        }
        return true
    }

    /// Sends `signal` (SIGSTOP / SIGCONT: a frozen and resumed coordinator).
    public func signal(_ signal: Int32) {
        guard let p = process, p.isRunning else { return }
        Foundation.kill(p.processIdentifier, signal)
    }

    public func kill() {
        guard let p = process, p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    deinit { kill() }
}

/// deploy/policy.toml, as shipped.
public enum PalmPolicyText {
    public static var shipped: String {
        (try? String(contentsOfFile: TestPKI.repoRoot.appendingPathComponent("deploy/policy.toml").path, encoding: .utf8)) ?? ""
    }
}
