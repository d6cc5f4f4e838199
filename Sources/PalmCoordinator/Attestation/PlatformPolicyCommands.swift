import Foundation
import PalmSecurity
import PalmWire

/// The platform policy as operators handle it: versioned in the store, every change audited.
extension CoordinatorService {
    /// A host's verified logs (the ones its quotes confirmed): what learning and diffing read.
    private func verifiedLogs(_ db: StoreConnection, host: String) throws -> (boot: BootEventLog, ima: IMALog) {
        guard let row = try db.row("""
            SELECT state, boot_log, ima_log FROM tpm_host LEFT JOIN tpm_log USING (host) WHERE tpm_host.host = ?
            """, arguments: [host]) else {
            throw ServiceError.refused("\(host) has not reported a TPM")
        }
        guard (try row.get("state") as String) == "enrolled" else { throw ServiceError.refused("\(host) is not enrolled (hosts enroll \(host))") }
        guard let boot = (row["boot_log"] as String?).flatMap({ Data(base64Encoded: $0) }) else {
            throw ServiceError.refused("\(host) has not sent a verified quote yet: wait for its next quote")
        }
        let ima = (row["ima_log"] as String?).flatMap { Data(base64Encoded: $0) } ?? Data()
        do {
            return (try BootEventLog(decoding: Array(boot)), try IMALog(decoding: Array(ima)))
        } catch { throw ServiceError.refused("\(host)'s stored logs cannot be read: \(error)") }
    }

    /// `attestation policy learn --host HOST`: a new policy version allowing everything the host's
    /// verified logs show (merged into the one in force) and the configured palm-dest digests.
    func learnPlatformPolicy(from host: String, actor: String) throws -> [String: String] {
        try store.write { db in
            let (boot, ima) = try verifiedLogs(db, host: host)
            let (version, current, _) = try currentPlatformPolicy(db)
            let next = current.learning(boot: boot, ima: ima.entries[...], agents: settings.allowlist.agents)
            let added = (next.boot.count - current.boot.count, next.files.count - current.files.count)
            let newVersion = version + 1
            try db.execute(sql: "INSERT INTO platform_policy (version, policy, created, created_by, note) VALUES (?, ?, ?, ?, ?)",
                           arguments: [newVersion, String(decoding: try JSONEncoder().encode(next), as: UTF8.self), clock(), actor,
                                       "learned from \(host)"])
            try audit.append(in: db, actor: actor, role: "", action: "attestation.policy.learn", target: host, allowed: true,
                             detail: "platform policy v\(newVersion): +\(added.0) boot components, +\(added.1) files learned from \(host)")
            return ["version": "\(newVersion)", "boot": "\(next.boot.count)", "files": "\(next.files.count)",
                    "added": "\(added.0) boot components, \(added.1) files", "learned_from": host]
        }
    }

    /// `attestation policy show`: one row per allowed item, or (`json`) the policy as one JSON
    /// value (what a source's `attestation.platform_policy` file holds).
    func platformPolicyRows(json: Bool) throws -> [[String: String]] {
        try store.read { db in
            let (version, policy, _) = try currentPlatformPolicy(db)
            if json { return [["version": "\(version)", "policy": try policy.fileText()]] }
            let header: [[String: String]] = [["kind": "version", "what": "v\(version)", "digest": "",
                                                "detail": "PCRs \(policy.pcrs.map(String.init).joined(separator: ","))"]]
            return header
                + policy.boot.map { ["kind": "boot", "what": "PCR \($0.pcr) \($0.type)", "digest": $0.digest, "detail": $0.what] }
                + policy.files.map { ["kind": "file", "what": $0.path, "digest": $0.digest, "detail": ""] }
                + policy.excludes.map { ["kind": "exclude", "what": $0, "digest": "", "detail": "not checked"] }
                + policy.agents.map { ["kind": "agent", "what": "palm-dest", "digest": $0, "detail": ""] }
        }
    }

    /// `attestation policy diff HOST`: what the host ran (its verified logs) that the policy in
    /// force does not allow.
    func platformPolicyDiff(host: String) throws -> [[String: String]] {
        try store.read { db in
            let (boot, ima) = try verifiedLogs(db, host: host)
            let (version, policy, index) = try currentPlatformPolicy(db)
            let violations = policy.violations(boot: boot, ima: ima.entries[...], agentDigest: nil, limit: 10_000, index: index)
            guard !violations.isEmpty else {
                return [["kind": "none", "what": "\(host) ran nothing policy v\(version) does not allow", "digest": ""]]
            }
            return violations.map { v -> [String: String] in
                switch v {
                case let .bootComponent(pcr, type, digest, what): return ["kind": "boot", "what": "PCR \(pcr) \(type) \(what)", "digest": digest]
                case let .file(path, digest): return ["kind": "file", "what": path, "digest": digest]
                case let .measurementViolation(path): return ["kind": "violation", "what": path, "digest": ""]
                case let .agentNotAllowed(d), let .agentNotMeasured(d): return ["kind": "agent", "what": "\(v)", "digest": d]
                }
            }
        }
    }
}
