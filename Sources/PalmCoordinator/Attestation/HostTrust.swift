import PalmSecurity

extension CoordinatorService {
    /// A host's attestation as the scheduler and the operators see it.
    struct HostTrust {
        /// trusted | untrusted | unenrolled (a host with no TPM row is `none`).
        var verdict: String
        /// For `hosts`: the verdict with its reason.
        var text: String
        var trusted: Bool { verdict == "trusted" }
    }

    /// What a host's TPM record amounts to now: trusted only while enrolled, its last quote good
    /// and younger than `max_quote_age_s`.
    func hostTrust(state: String, trust: String, attested: Double?, now: Double, detail: String = "") throws -> HostTrust {
        guard state == "enrolled" else {
            let why = state == "proven" ? "proven, waiting for hosts enroll" : state == "challenged" ? "enrolling" : state
            return HostTrust(verdict: "unenrolled", text: "tpm \(why)\(detail.isEmpty || state == "proven" ? "" : ": \(detail)")")
        }
        if trust == "trusted", let attested, now - attested <= settings.attestation.maxQuoteAge {
            return HostTrust(verdict: "trusted", text: "tpm trusted")
        }
        if trust == "trusted" || trust == "unknown" {
            return HostTrust(verdict: "untrusted", text: "tpm untrusted: no good quote for \(settings.attestation.maxQuoteAge) s")
        }
        return HostTrust(verdict: "untrusted", text: "tpm untrusted: \(detail)")
    }

    /// Every host's attestation that keeps it from being scheduled (as a destination, or as the
    /// source of a balance move): none when the cluster accepts software attestation.
    func untrustedHosts(_ db: StoreConnection, now: Double) throws -> [String: String] {
        guard (settings.allowlist.platform?.requirement ?? .tpm) == .tpm else { return [:] }
        var out: [String: String] = [:]
        for h in try db.values(String.self, "SELECT name FROM host") { out[h] = "no TPM attestation (attestation.require = tpm)" }
        for r in try db.rows("SELECT host, state, trust, trust_detail, attested FROM tpm_host") {
            let t = try hostTrust(state: try r.get("state"), trust: try r.get("trust"), attested: r["attested"], now: now,
                                  detail: try r.get("trust_detail"))
            out[try r.get("host")] = t.trusted ? nil : t.text
        }
        return out
    }
}
