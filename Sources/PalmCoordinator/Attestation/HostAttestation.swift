import Foundation
import PalmControl
import PalmCrypto
import PalmSecurity
import PalmWire

/// Enrollment and continuous attestation of hosts' TPMs, inside each heartbeat's transaction.
///
/// ```text
///   (no row) --identity: EK certificate chains to ek_ca, AK acceptable--> challenged (credential sent)
///   challenged --the credential activated (same secret)--> proven --operator `hosts enroll`
///                                              (or enrollment = auto, first enrollment)--> enrolled
///   challenged --another secret--> refused;  identity refused --> refused (each named, audited)
///   enrolled --identity with another key--> enrolled, pending_ak_name set, untrusted
///   refused / enrolled with a pending key --operator `hosts enroll`--> reenroll --identity--> challenged
///                                                            --activated--> enrolled (the new key)
///   enrolled: every quote_interval_s a nonce in the orders; the next heartbeat's quote is checked
///   (enrolled key, nonce, PCRs, boot log, the IMA entries since the last quote, the policy):
///   trust = trusted | untrusted (with why), audited on every change.
/// ```
/// A violation (a file the policy does not allow) stays until the host reboots (IMA keeps it in
/// its log) or the policy changes. A host is trusted for scheduling only while its last good
/// quote is younger than `max_quote_age_s`.
extension CoordinatorService {
    /// One host's TPM record.
    struct TPMHost {
        var state: String
        var ekPublic: [UInt8]
        var akPublic: [UInt8]
        var akName: String
        var trust: String
        var attested: Double?
        var quoteNonce: String?
        var quoteRequested: Double?
        var progress: IMAProgress?
        var challengeBlob: String?
        var challengeSecret: String?
        var challengeDigest: String?
        var approveRequested: Bool
        var pendingKey: String?
        var violation: String?
        var policyVersion: Int?

        init(_ r: StoreRow) throws {
            state = try r.get("state")
            ekPublic = Hex.decode(try r.get("ek_public") as String) ?? []
            akPublic = Hex.decode(try r.get("ak_public") as String) ?? []
            akName = try r.get("ak_name")
            trust = try r.get("trust")
            attested = r["attested"]
            quoteNonce = r["quote_nonce"]
            quoteRequested = r["quote_requested"]
            progress = (r["ima_progress"] as String?).flatMap(IMAProgress.init(storageText:))
            challengeBlob = r["challenge_blob"]
            challengeSecret = r["challenge_secret"]
            challengeDigest = r["challenge_digest"]
            approveRequested = try r.get("approve_requested")
            pendingKey = r["pending_ak_name"]
            violation = r["violation"]
            policyVersion = r["policy_version"]
        }
    }

    /// One host's record without its stored logs (read only when they grow or are judged again).
    func tpmHost(_ db: StoreConnection, _ host: String) throws -> TPMHost? {
        try db.row("""
            SELECT state, ek_public, ak_public, ak_name, trust, attested, quote_nonce, quote_requested, ima_progress, challenge_blob,
                   challenge_secret, challenge_digest, approve_requested, pending_ak_name, violation, policy_version
            FROM tpm_host WHERE host = ?
            """, arguments: [host]).map(TPMHost.init)
    }

    /// The platform policy in force: the newest stored version, else the configuration's (v0);
    /// decoded once per version.
    func currentPlatformPolicy(_ db: StoreConnection) throws -> (version: Int, policy: PlatformPolicy, index: PlatformPolicy.Index) {
        let version = try db.value(Int.self, "SELECT MAX(version) FROM platform_policy") ?? 0
        if let cached = platformPolicyCache.current, cached.version == version { return cached }
        var policy = settings.allowlist.platform?.policy ?? PlatformPolicy()
        if version > 0, let text = try db.value(String.self, "SELECT policy FROM platform_policy WHERE version = ?", arguments: [version]) {
            policy = try JSONDecoder().decode(PlatformPolicy.self, from: Data(text.utf8))
        }
        let entry = (version: version, policy: policy, index: policy.index)
        platformPolicyCache.withLockedValue { $0 = entry }
        return entry
    }

    /// The version of what sources must demand: the policy's version and the enrollment generation.
    func platformTrustVersion(_ db: StoreConnection) throws -> String {
        let row = try db.row("SELECT (SELECT MAX(version) FROM platform_policy) AS policy, (SELECT enrollment FROM platform_generation WHERE id = 1) AS enrollment")
        return "p\((row?["policy"] as Int?) ?? 0).e\((row?["enrollment"] as Int?) ?? 0)"
    }

    /// Marks a change of the enrolled keys (inside the transaction that made it).
    func enrollmentChanged(_ db: StoreConnection) throws {
        try db.execute(sql: "UPDATE platform_generation SET enrollment = enrollment + 1 WHERE id = 1")
    }

    /// What sources must demand of destinations: the configured requirement, the policy in force,
    /// every enrolled host's key (and the configuration's static ones).
    func platformTrust(_ db: StoreConnection) throws -> PlatformTrust {
        var trust = settings.allowlist.platform ?? PlatformTrust()
        trust.policy = try currentPlatformPolicy(db).policy
        for r in try db.rows("SELECT host, ak_name FROM tpm_host WHERE state = 'enrolled'") {
            trust.enrolledKeys[try r.get("host")] = try r.get("ak_name")
        }
        trust.version = try platformTrustVersion(db)
        return trust
    }

    /// Applies what `report` says of the host's TPM and puts in `orders` what is due of it.
    func attestation(_ db: StoreConnection, host: String, report: PlatformReport?, orders: inout AgentOrders, actor: String, now: Double) throws {
        guard let report else {
            // Nothing reported this time: ask for what is due of a host that has a TPM record.
            if let r = try tpmHost(db, host) { orders.platform = try request(db, host: host, record: r, now: now) }
            return
        }
        if let identity = report.identity { try consider(identity, db, host: host, record: try tpmHost(db, host), actor: actor, now: now) }
        if let secret = report.activatedCredential, let r = try tpmHost(db, host), r.state == "challenged" {
            try activated(secret, db, host: host, record: r, actor: actor, now: now)
        }
        if let quote = report.quote, let r = try tpmHost(db, host), r.state == "enrolled", let nonce = r.quoteNonce,
           Hex.encode(Array(quote.nonce)) == nonce {
            try check(quote, db, host: host, record: r, actor: actor, now: now)
        }
        orders.platform = try request(db, host: host, record: try tpmHost(db, host), now: now)
    }

    private func setTrust(_ db: StoreConnection, host: String, trusted: Bool, detail: String, previous: String, actor: String, now: Double) throws {
        let trust = trusted ? "trusted" : "untrusted"
        if trusted {
            try db.execute(sql: "UPDATE tpm_host SET trust = ?, trust_detail = ?, attested = ? WHERE host = ?", arguments: [trust, detail, now, host])
        } else {
            try db.execute(sql: "UPDATE tpm_host SET trust = ?, trust_detail = ? WHERE host = ?", arguments: [trust, detail, host])
        }
        guard trust != previous else { return }
        try audit.append(in: db, actor: actor, role: "agent", action: "tpm.attest", target: host, allowed: trusted, detail: "\(trust): \(detail)")
        metrics.attestation(trusted: trusted)
    }

    private func refuse(_ why: String, _ db: StoreConnection, host: String, identity: PlatformIdentity?, actor: String) throws {
        try db.execute(sql: """
            INSERT INTO tpm_host (host, state, detail, ek_public, ek_certificate, ak_public, ak_name, trust, trust_detail)
            VALUES (?, 'refused', ?, ?, ?, ?, '', 'untrusted', ?)
            ON CONFLICT(host) DO UPDATE SET state = CASE WHEN tpm_host.state = 'enrolled' THEN 'enrolled' ELSE 'refused' END,
              detail = excluded.detail, trust = 'untrusted', trust_detail = excluded.trust_detail, approve_requested = 0
            """, arguments: [host, why, Hex.encode(Array(identity?.endorsementKey ?? Data())),
                             Hex.encode(Array(identity?.endorsementCertificate ?? Data())), Hex.encode(Array(identity?.attestationKey ?? Data())),
                             "enrollment refused: \(why)"])
        try audit.append(in: db, actor: actor, role: "agent", action: "tpm.enroll", target: host, allowed: false, detail: why)
    }

    /// A reported identity: the EK certificate checked, the AK acceptable; a new key gets a
    /// credential challenge — a changed one only once an operator asked for re-enrollment.
    private func consider(_ id: PlatformIdentity, _ db: StoreConnection, host: String, record: TPMHost?, actor: String, now: Double) throws {
        let ek = Array(id.endorsementKey), ak = Array(id.attestationKey), certificate = Array(id.endorsementCertificate)
        let akArea: TPMPublicArea, ekArea: TPMPublicArea
        do {
            akArea = try PlatformEvidenceCheck.attestationKey(ak).area
            ekArea = try TPMPublicArea(decoding: ek)
        } catch { return try refuse("\(error)", db, host: host, identity: id, actor: actor) }
        let akName = Hex.encode(akArea.name)
        if let r = record {
            let same = r.akName == akName && r.ekPublic == ek
            switch r.state {
            case "enrolled":
                guard !same, r.pendingKey != akName else { return }
                try db.execute(sql: "UPDATE tpm_host SET pending_ak_name = ? WHERE host = ?", arguments: [akName, host])
                try setTrust(db, host: host, trusted: false,
                             detail: "the TPM's attestation key changed (now \(akName.prefix(20))…): re-enroll explicitly with palm-coordinator hosts enroll \(host)",
                             previous: r.trust, actor: actor, now: now)
                return
            case "challenged", "proven":
                if same { return }
            case "refused":
                return  // an operator decides (hosts enroll)
            default:
                break  // reenroll: challenge what the host presents now
            }
        }
        // One TPM, one host: an endorsement key already enrolled under another name is someone
        // presenting that host's TPM as its own (or two hosts sharing one TPM, which attests neither).
        if let other = try db.value(String.self, "SELECT host FROM tpm_host WHERE ek_public = ? AND host != ? AND state != 'refused'",
                                    arguments: [Hex.encode(ek), host]) {
            return try refuse("this TPM's endorsement key is already enrolled for \(other)", db, host: host, identity: id, actor: actor)
        }
        guard !settings.attestation.endorsementCAs.isEmpty else {
            return try refuse("no attestation.ek_ca is configured: the coordinator cannot tell a TPM from its manufacturer's CA", db, host: host,
                              identity: id, actor: actor)
        }
        let cert = EndorsementCertificate(der: certificate)
        do {
            try cert.verify(anchors: settings.attestation.endorsementCAs)
            guard case let .rsa(modulus, _) = ekArea.key, try cert.rsaModulus() == Array(modulus.drop { $0 == 0 }) else {
                return try refuse("the EK certificate does not certify the endorsement key the host presented", db, host: host, identity: id, actor: actor)
            }
        } catch let e as EndorsementCertificate.Refusal {
            return try refuse("\(e)", db, host: host, identity: id, actor: actor)
        }
        let secret = Digest32.random().bytes
        let challenge: CredentialChallenge
        do { challenge = try CredentialChallenge(secret: secret, name: akArea.name, endorsementKey: ekArea) } catch {
            return try refuse("\(error)", db, host: host, identity: id, actor: actor)
        }
        try db.execute(sql: """
            INSERT INTO tpm_host (host, state, detail, ek_public, ek_certificate, ak_public, ak_name, challenge_blob, challenge_secret, challenge_digest)
            VALUES (?, 'challenged', 'credential sent', ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(host) DO UPDATE SET state = 'challenged', detail = excluded.detail, ek_public = excluded.ek_public,
              ek_certificate = excluded.ek_certificate, ak_public = excluded.ak_public, ak_name = excluded.ak_name,
              challenge_blob = excluded.challenge_blob, challenge_secret = excluded.challenge_secret, challenge_digest = excluded.challenge_digest,
              pending_ak_name = NULL
            """, arguments: [host, Hex.encode(ek), Hex.encode(certificate), Hex.encode(ak), akName, Hex.encode(challenge.credentialBlob),
                             Hex.encode(challenge.encryptedSecret), SHA256.hash(secret).hex])
        try audit.append(in: db, actor: actor, role: "agent", action: "tpm.enroll", target: host, allowed: true,
                         detail: "EK certificate of \((try? cert.subject()) ?? "?") accepted; credential sent for attestation key \(akName.prefix(20))…")
    }

    private func activated(_ secret: Data, _ db: StoreConnection, host: String, record r: TPMHost, actor: String, now: Double) throws {
        guard let digest = r.challengeDigest, SHA256.hash(Array(secret)).hex == digest else {
            return try refuse("the credential was not activated by the TPM holding this EK and attestation key", db, host: host, identity: nil, actor: actor)
        }
        let first = try db.value(Double.self, "SELECT enrolled FROM tpm_host WHERE host = ?", arguments: [host]) == nil
        let enroll = r.approveRequested || (first && settings.attestation.enrollment == .automatic)
        let detail = enroll ? "enrolled" : "the TPM proved its attestation key; waiting for an operator: palm-coordinator hosts enroll \(host)"
        try db.execute(sql: """
            UPDATE tpm_host SET state = ?, detail = ?, challenge_blob = NULL, challenge_secret = NULL, challenge_digest = NULL,
              approve_requested = 0, ima_progress = NULL, violation = NULL, policy_version = NULL, trust = 'unknown',
              trust_detail = ? WHERE host = ?
            """, arguments: [enroll ? "enrolled" : "proven", detail, enroll ? "enrolled; not attested yet" : "not enrolled", host])
        try db.execute(sql: "DELETE FROM tpm_log WHERE host = ?", arguments: [host])  // the new key's log starts over
        if enroll {
            try db.execute(sql: "UPDATE tpm_host SET enrolled = ?, enrolled_by = ? WHERE host = ?",
                           arguments: [now, r.approveRequested ? "operator" : "auto (attestation.enrollment = auto)", host])
            try enrollmentChanged(db)
        }
        try audit.append(in: db, actor: actor, role: "agent", action: "tpm.enroll", target: host, allowed: true,
                         detail: enroll ? "attestation key \(r.akName.prefix(20))… enrolled" : "credential activated; enrollment waits for an operator")
    }

    private func check(_ q: PlatformQuote, _ db: StoreConnection, host: String, record r: TPMHost, actor: String, now: Double) throws {
        // The nonce is spent whatever the verdict (cleared with the verdict's own update).
        let (version, policy, index) = try currentPlatformPolicy(db)
        let verifier = PlatformEvidenceCheck(policy: policy, index: index, enrolledKeys: [host: r.akName], clocks: nil)
        do {
            guard let evidence = q.evidence(attestationKey: r.akPublic) else { throw PlatformAttestationVerifier.Refusal.malformed("PCR values") }
            let quoted = try verifier.checkQuote(evidence, host: host, qualifyingData: QuoteBinding.heartbeat(nonce: Array(q.nonce), host: host))
            let boot = try verifier.checkBoot(evidence.bootLog, quoted: quoted)
            var progress = r.progress ?? IMAProgress(resetCount: quoted.quote.resetCount)
            // The host's verified log is read and rewritten only when it grows or must be judged
            // again: a steady host's quote costs its signature, its boot log and a few rows.
            func storedLog() throws -> Data {
                (try db.value(String.self, "SELECT ima_log FROM tpm_log WHERE host = ?", arguments: [host])).flatMap { Data(base64Encoded: $0) } ?? Data()
            }
            var kept: Data?
            var violation = r.violation
            if progress.resetCount != quoted.quote.resetCount {
                guard quoted.quote.resetCount > progress.resetCount else {
                    throw PlatformAttestationVerifier.Refusal.clock("the TPM's reset count went back (\(progress.resetCount) → \(quoted.quote.resetCount))")
                }
                // A new boot: IMA starts a new log, and what the host ran before is gone.
                progress = IMAProgress(resetCount: quoted.quote.resetCount)
                kept = Data()
                violation = nil
            }
            var fresh: [IMALog.Entry] = []
            var reached = true
            if let pcr10 = quoted.pcrs[PlatformPolicy.imaPCR] {
                fresh = try progress.absorb(chunk: Array(q.imaEntries), offset: q.imaOffset, complete: q.imaComplete, quoted: pcr10,
                                            maxPendingBytes: settings.attestation.maxPendingIMA)
                reached = progress.verifiedValue == pcr10.hex
                if progress.verifiedCount == fresh.count { try verifier.checkBootAggregate(fresh[...], quoted: quoted) }
            }
            if !fresh.isEmpty || r.policyVersion != version {
                kept = (try kept ?? storedLog()) + IMALog(entries: fresh).encoded()
            }
            // A new policy judges everything the host ran since its boot; otherwise only what is new.
            let judged = r.policyVersion == version ? fresh[...] : try IMALog(decoding: Array(kept ?? Data())).entries[...]
            if r.policyVersion != version { violation = nil }
            if violation == nil {
                violation = policy.violations(boot: BootEventLog.empty, ima: judged, agentDigest: nil, limit: 1, index: index).first?.description
            }
            let bootViolation = policy.violations(boot: boot, ima: [], agentDigest: nil, limit: 1, index: index).first
            try db.execute(sql: "UPDATE tpm_host SET ima_progress = ?, violation = ?, policy_version = ?, quote_nonce = NULL WHERE host = ?",
                           arguments: [progress.storageText, violation, version, host])
            // The logs: written only when they changed (a steady host's boot log never does).
            try db.execute(sql: """
                INSERT INTO tpm_log (host, boot_log) VALUES (?, ?)
                ON CONFLICT(host) DO UPDATE SET boot_log = excluded.boot_log WHERE tpm_log.boot_log IS DISTINCT FROM excluded.boot_log
                """, arguments: [host, q.bootLog.base64EncodedString()])
            if let kept { try db.execute(sql: "UPDATE tpm_log SET ima_log = ? WHERE host = ?", arguments: [kept.base64EncodedString(), host]) }
            if let problem = bootViolation?.description ?? violation {
                try setTrust(db, host: host, trusted: false, detail: "\(problem) (policy v\(version))", previous: r.trust, actor: actor, now: now)
            } else if !reached {
                // Part of a long IMA log: the verdict waits for a quote that covers all of it
                // (asked at the next heartbeat); what the host was, it stays meanwhile.
                return
            } else if let pending = r.pendingKey {
                try setTrust(db, host: host, trusted: false, detail: "the TPM's attestation key changed (now \(pending.prefix(20))…): re-enroll explicitly",
                             previous: r.trust, actor: actor, now: now)
            } else {
                try setTrust(db, host: host, trusted: true,
                             detail: "quote verified: \(boot.events.count) boot events, \(progress.verifiedCount) measured files (policy v\(version))",
                             previous: r.trust, actor: actor, now: now)
            }
        } catch {
            try db.execute(sql: "UPDATE tpm_host SET quote_nonce = NULL WHERE host = ?", arguments: [host])
            try setTrust(db, host: host, trusted: false, detail: "\(error)", previous: r.trust, actor: actor, now: now)
        }
    }

    /// What the host's TPM is asked for in these orders.
    private func request(_ db: StoreConnection, host: String, record: TPMHost?, now: Double) throws -> PlatformRequest? {
        guard let r = record else { return PlatformRequest(identity: true) }
        switch r.state {
        case "challenged":
            guard let blob = r.challengeBlob.flatMap(Hex.decode), let secret = r.challengeSecret.flatMap(Hex.decode) else { return nil }
            return PlatformRequest(credentialBlob: Data(blob), encryptedSecret: Data(secret))
        case "reenroll":
            return PlatformRequest(identity: true)
        case "enrolled":
            var request = PlatformRequest(imaOffset: r.progress?.nextOffset ?? 0, imaMaxBytes: settings.attestation.imaChunk)
            let interval = settings.attestation.quoteInterval
            let catchingUp = (r.progress?.pendingCount ?? 0) > 0
            let due = r.attested == nil ? now - (r.quoteRequested ?? 0) >= interval || r.quoteRequested == nil
                : now - (r.attested ?? 0) >= interval && now - (r.quoteRequested ?? 0) >= interval
            if let nonce = r.quoteNonce, let requested = r.quoteRequested, now - requested < interval {
                request.quoteNonce = Hex.decode(nonce).map { Data($0) }
            } else if catchingUp || due {
                let nonce = Digest32.random().bytes
                try db.execute(sql: "UPDATE tpm_host SET quote_nonce = ?, quote_requested = ? WHERE host = ?", arguments: [Hex.encode(nonce), now, host])
                request.quoteNonce = Data(nonce)
            }
            return request.quoteNonce == nil ? nil : request
        default:
            return nil
        }
    }

    /// `hosts enroll HOST`: enroll a host whose TPM proved itself, or start again (a refused host,
    /// a changed key: the next identity it reports is challenged and, once proven, enrolled).
    func enroll(host: String, actor: String) throws -> [String: String] {
        try store.write { db in
            guard let r = try tpmHost(db, host) else {
                throw ServiceError.refused("\(host) has not reported a TPM (its palm-source needs [attestation] mode = \"tpm\")")
            }
            let now = clock()
            switch r.state {
            case "proven":
                try db.execute(sql: "UPDATE tpm_host SET state = 'enrolled', detail = 'enrolled', enrolled = ?, enrolled_by = ? WHERE host = ?",
                               arguments: [now, actor, host])
                try enrollmentChanged(db)
                try audit.append(in: db, actor: actor, role: "", action: "hosts.enroll", target: host, allowed: true,
                                 detail: "attestation key \(r.akName.prefix(20))… enrolled")
                return ["host": host, "state": "enrolled", "key": r.akName]
            case "enrolled" where r.pendingKey == nil:
                return ["host": host, "state": "enrolled", "key": r.akName, "detail": "already enrolled with this key"]
            default:
                try db.execute(sql: "UPDATE tpm_host SET state = 'reenroll', detail = ?, approve_requested = 1, trust = 'untrusted', trust_detail = ? WHERE host = ?",
                               arguments: ["re-enrollment asked by \(actor)", "being re-enrolled", host])
                if r.state == "enrolled" { try enrollmentChanged(db) }
                try audit.append(in: db, actor: actor, role: "", action: "hosts.enroll", target: host, allowed: true,
                                 detail: "re-enrollment: the host's next TPM identity is challenged and enrolled once proven")
                return ["host": host, "state": "reenroll", "detail": "the host's TPM is challenged at its next heartbeat"]
            }
        }
    }
}
