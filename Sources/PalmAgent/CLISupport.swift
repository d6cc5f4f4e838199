import PalmSupport
import ArgumentParser
import Foundation
import Logging
import PalmConfig
import PalmMigration
import PalmSecurity

/// Small helpers the thin executables share.
public enum CLI {
    /// Logs to stderr at `level`, or at `PALM_LOG_LEVEL` (trace … critical) when that is set.
    public static func bootstrapLogging(label: String, level: Logger.Level = .info) -> Logger {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: label)
        logger.logLevel = ProcessInfo.processInfo.environment["PALM_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? level
        return logger
    }

    /// Prints "PROGRAM: error: …" to stderr.
    public static func fail(_ program: String, _ error: Error) {
        FileHandle.standardError.write(Data("\(program): error: \(error)\n".utf8))
    }

    /// A progress printer: one rewritten line on a terminal, a line per second otherwise.
    public static func progressPrinter() -> (MigrationProgress) -> Void {
        let tty = isatty(2) == 1
        var last = 0.0
        return { p in
            let now = MonotonicClock.now()
            if tty {
                FileHandle.standardError.write(Data("\r\u{1B}[K\(p.line)".utf8))
                if p.phase == .done { FileHandle.standardError.write(Data("\n".utf8)) }
            } else if now - last >= 1 || p.phase == .handoff || p.phase == .done {
                last = now
                FileHandle.standardError.write(Data("progress: \(p.line)\n".utf8))
            }
        }
    }

    /// Runs `evidence verify` for `program`: exit 0 when every check passes, 1 when one fails,
    /// 2 when the file or certificate cannot be read.
    public static func runEvidenceVerify(program: String, path: String, coordinatorCertificates: () throws -> [String]) throws {
        let ok: Bool
        do {
            ok = try verifyEvidence(path: path, coordinatorCertificates: try coordinatorCertificates())
        } catch {
            fail(program, error)
            throw ExitCode(2)
        }
        if !ok { throw ExitCode(1) }
    }

    /// `evidence verify`: prints every check; true when all passed. The ticket must be signed by
    /// one of the coordinators whose certificates (PEM files) are listed.
    public static func verifyEvidence(path: String, coordinatorCertificates: [String]) throws -> Bool {
        let evidence = try Evidence.load(path)
        let pems = try coordinatorCertificates.map { file in
            guard let pem = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigError.unreadable(file: file, reason: "cannot read the coordinator certificate")
            }
            return pem
        }
        let coordinators = try CoordinatorTrust(certificatePEMs: pems)
        print("evidence of migration \(evidence.migrationID) (\(evidence.vm)), recorded by the \(evidence.recordedBy)")
        print("  attestation \(evidence.attestationSummary)")
        var ok = true
        for c in evidence.verify(coordinators: coordinators) {
            print("  \(c.passed ? "OK  " : "FAIL") \(c.name)\(c.detail.isEmpty ? "" : ": \(c.detail)")")
            ok = ok && c.passed
        }
        print(ok ? "all signatures verify" : "EVIDENCE DOES NOT VERIFY")
        return ok
    }
}
