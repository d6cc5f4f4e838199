import Foundation
import Logging
import PalmCrypto
import PalmProtection
import PalmWire

/// What a source demands of a destination's attestation.
public enum AttestationRequirement: String, Codable, Sendable, CaseIterable {
    /// A TPM quote by the host's enrolled attestation key, logs replayed, the platform policy met.
    case tpm
    /// The software report alone is accepted (and a TPM's evidence, when sent, still checked).
    case software
}

/// Where a TPM-attested destination's TLS key must live.
public enum TLSKeyRequirement: String, Codable, Sendable, CaseIterable {
    /// In the destination's TPM, certified by its enrolled attestation key (TPM2_Certify): a key
    /// file copied from the host, or root relaying this session to another machine, cannot
    /// terminate the session.
    case tpm
    /// A key file is accepted (the TPM's certification, when sent, is still checked).
    case file
}

/// The check of a destination's hardware-rooted attestation, on top of the software report
/// (``AttestationPolicy``: signed by the TLS key, this session's nonce and exporter, the agent,
/// hypervisor and configuration allowlists). With TPM evidence:
///
/// 1. the attestation key is the one enrolled for the destination host (by name);
/// 2. its signature over the quote verifies; the quote is the TPM's own (magic, type);
/// 3. the quote's qualifying data is ``QuoteBinding/migration(nonce:exporter:ticketID:)`` for
///    this session and ticket (fresh, bound to this TLS session and this migration);
/// 4. the quote covers the policy's PCRs and its digest is the digest of the PCR values sent;
/// 5. the boot event log replays to the boot PCRs, the IMA log (a prefix of it: the kernel keeps
///    measuring after the quote) to PCR 10; the IMA `boot_aggregate` matches the boot PCRs;
/// 6. the platform policy: every boot component and every measured file allowed, palm-dest's
///    own binary measured with an allowed digest;
/// 7. the TPM's reset and restart counters never go back (a reboot is noticed and logged);
/// 8. the key that terminates this TLS session (the peer certificate's) is certified by the same
///    attestation key as a key that never leaves the TPM — required unless `tlsKey` is `file`.
///
/// Each refusal names what failed (the first unknown file with its path and digest, the boot
/// component, the stale quote, the unenrolled key).
public struct PlatformAttestationVerifier: AttestationVerifier {
    public var software: AttestationPolicy
    public var requirement: AttestationRequirement
    public var tlsKey: TLSKeyRequirement
    public var policy: PlatformPolicy
    /// Host name (its certificate's common name) → the enrolled attestation key's name (hex).
    public var enrolledKeys: [String: String]
    /// The migration's ticket id (bound into the quote).
    public var ticketID: [UInt8]
    public var clocks: TPMClockLedger?
    public var logger: Logger?

    public init(software: AttestationPolicy, requirement: AttestationRequirement, tlsKey: TLSKeyRequirement = .tpm, policy: PlatformPolicy,
                enrolledKeys: [String: String], ticketID: [UInt8], clocks: TPMClockLedger? = nil, logger: Logger? = nil) {
        self.software = software
        self.requirement = requirement
        self.tlsKey = tlsKey
        self.policy = policy
        self.enrolledKeys = enrolledKeys
        self.ticketID = ticketID
        self.clocks = clocks
        self.logger = logger
    }

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case noTPMEvidence
        case notEnrolled(host: String)
        case otherKey(host: String)
        case unacceptableKey(String)
        case malformed(String)
        case badQuoteSignature
        case staleQuote
        case pcrsNotCovered(missing: [Int])
        case pcrDigestMismatch
        case bootLogDoesNotReplay(pcr: Int)
        case imaLogDoesNotReplay
        case bootAggregateMismatch
        case policy([PlatformPolicy.Violation])
        case clock(String)
        case tlsKeyNotInTPM
        case tlsKeyCertification(String)

        public var description: String {
            switch self {
            case .noTPMEvidence: return "the destination sent no TPM evidence (software attestation only) and this source requires tpm"
            case let .notEnrolled(h): return "no attestation key is enrolled for \(h)"
            case let .otherKey(h): return "the quote is signed by an attestation key that is not the one enrolled for \(h)"
            case let .unacceptableKey(d): return "the attestation key is not acceptable: \(d)"
            case let .malformed(d): return "malformed TPM evidence: \(d)"
            case .badQuoteSignature: return "the quote's signature does not verify with the enrolled attestation key"
            case .staleQuote: return "the quote is not over this session's nonce, TLS exporter and ticket (stale or replayed)"
            case let .pcrsNotCovered(m): return "the quote does not cover PCRs \(m.map(String.init).joined(separator: ","))"
            case .pcrDigestMismatch: return "the PCR values sent do not match the quote's PCR digest"
            case let .bootLogDoesNotReplay(p): return "the boot event log does not replay to the quoted PCR \(p)"
            case .imaLogDoesNotReplay: return "the IMA log does not replay to the quoted PCR 10"
            case .bootAggregateMismatch: return "IMA's boot_aggregate does not match the quoted boot PCRs"
            case let .policy(v): return v.map(\.description).joined(separator: "; ")
            case let .clock(d): return d
            case .tlsKeyNotInTPM:
                return "the destination's TLS key is not in its TPM (no certification by its attestation key) and this source requires attestation.tls_key = tpm"
            case let .tlsKeyCertification(d): return "the TPM's certification of the TLS key \(d)"
            }
        }
    }

    /// What a verified TPM attestation showed.
    public struct Verdict: Sendable, Equatable {
        public var bootEvents: Int
        public var measuredFiles: Int
        public var clock: TPMClockLedger.Observation
        public var keyName: String
        /// The session's TLS key is certified as the TPM's own (step 8).
        public var tlsKeyInTPM = false
    }

    public func verify(_ attestation: Attestation, binding: SessionBinding, peer: CertificateIdentity) throws {
        try software.verify(attestation, binding: binding, peer: peer)
        guard attestation.platform != nil else {
            guard requirement == .software else { throw Refusal.noTPMEvidence }
            logger?.notice("destination \(peer.commonName ?? peer.subject) attested in software only (accepted by attestation.require = software)")
            return
        }
        let verdict = try check(attestation, binding: binding, host: peer.commonName ?? "", peerKey: try Self.publicKeyInfo(of: peer))
        let key = verdict.tlsKeyInTPM ? "its TLS key in the TPM" : "its TLS key from a file (accepted by attestation.tls_key = file)"
        logger?.info("destination \(peer.commonName ?? peer.subject) attested by its TPM: \(verdict.bootEvents) boot events and \(verdict.measuredFiles) measured files allowed, \(key); \(verdict.clock)")
    }

    /// The SubjectPublicKeyInfo (DER) of the peer certificate's key.
    static func publicKeyInfo(of peer: CertificateIdentity) throws -> [UInt8] {
        do { return try VerifyingKey(certificatePEM: peer.pem).subjectPublicKeyInfo() } catch {
            throw Refusal.tlsKeyCertification("cannot be checked: the peer certificate's key is unreadable (\(error))")
        }
    }

    /// Steps 1–8 for evidence from `host`, whose TLS certificate's key is `peerKey`
    /// (SubjectPublicKeyInfo); throws the first refusal.
    public func check(_ attestation: Attestation, binding: SessionBinding, host: String, peerKey: [UInt8]) throws -> Verdict {
        guard let p = attestation.platform else { throw Refusal.noTPMEvidence }
        let expected = QuoteBinding.migration(nonce: binding.nonce, exporter: binding.exporter, ticketID: ticketID)
        let check = PlatformEvidenceCheck(policy: policy, enrolledKeys: enrolledKeys, clocks: clocks)
        var verdict = try check.check(p, host: host, qualifyingData: expected, agentDigest: attestation.agentDigest.hex)
        // 8. The TLS key.
        if let certification = p.tlsKey {
            try PlatformEvidenceCheck.checkTLSKey(certification, attestationKey: p.attestationKey, peerKey: peerKey)
            verdict.tlsKeyInTPM = true
        } else if tlsKey == .tpm {
            throw Refusal.tlsKeyNotInTPM
        }
        return verdict
    }
}

/// Steps 1–7 of ``PlatformAttestationVerifier`` for any qualifying data: what a migration's
/// source and the coordinator's continuous attestation both run.
public struct PlatformEvidenceCheck: Sendable {
    public let policy: PlatformPolicy
    /// The policy's lookup sets (given by a caller that checks many hosts against one policy).
    public let index: PlatformPolicy.Index
    public var enrolledKeys: [String: String]
    public var clocks: TPMClockLedger?

    public init(policy: PlatformPolicy, index: PlatformPolicy.Index? = nil, enrolledKeys: [String: String], clocks: TPMClockLedger?) {
        self.policy = policy
        self.index = index ?? policy.index
        self.enrolledKeys = enrolledKeys
        self.clocks = clocks
    }

    typealias Refusal = PlatformAttestationVerifier.Refusal

    /// The attestation key's public area, checked to be what palm enrolls: a restricted ECDSA
    /// P-256 / SHA-256 signing key that never left its TPM.
    public static func attestationKey(_ bytes: [UInt8]) throws -> (area: TPMPublicArea, key: VerifyingKey) {
        let area: TPMPublicArea
        do { area = try TPMPublicArea(decoding: bytes) } catch { throw Refusal.malformed("\(error)") }
        let required = TPMConstant.objectFixedTPM | TPMConstant.objectFixedParent | TPMConstant.objectSensitiveDataOrigin
            | TPMConstant.objectRestricted | TPMConstant.objectSign
        guard area.has(required), !area.has(TPMConstant.objectDecrypt) else {
            throw Refusal.unacceptableKey("not a restricted signing key that never left its TPM")
        }
        guard case let .ecc(curve, x, y) = area.key, curve == TPMConstant.eccNistP256,
              let scheme = area.signingScheme, scheme.scheme == TPMConstant.algECDSA, scheme.hash == TPMConstant.algSHA256 else {
            throw Refusal.unacceptableKey("not ECDSA P-256 with SHA-256")
        }
        do { return (area, try VerifyingKey(p256X: x, y: y)) } catch { throw Refusal.unacceptableKey("\(error)") }
    }

    /// Step 8: `c` is the attestation key's TPM2_Certify of a key that never leaves the TPM (fixed
    /// to it, generated in it, a signing key) whose point is the one of `peerKey` (the TLS
    /// certificate's SubjectPublicKeyInfo), over ``QuoteBinding/tlsKey(subjectPublicKeyInfo:)``.
    /// `attestationKey` is the quote's key, already checked to be the host's enrolled one.
    public static func checkTLSKey(_ c: PlatformEvidence.KeyCertification, attestationKey: [UInt8], peerKey: [UInt8]) throws {
        let (_, ak) = try Self.attestationKey(attestationKey)
        let info: TPMCertifyInfo, signature: TPMSignature, certified: TPMPublicArea
        do {
            info = try TPMCertifyInfo(decoding: c.certifyInfo)
            signature = try TPMSignature(decoding: c.signature)
            certified = try TPMPublicArea(decoding: c.publicArea)
        } catch { throw Refusal.tlsKeyCertification("is malformed: \(error)") }
        guard ak.isValidSignature(signature.der, for: info.bytes) else {
            throw Refusal.tlsKeyCertification("is not signed by the quote's attestation key")
        }
        guard info.name == certified.name else { throw Refusal.tlsKeyCertification("is for another key than the one sent") }
        guard certified.has(TPMConstant.objectFixedTPM | TPMConstant.objectFixedParent | TPMConstant.objectSensitiveDataOrigin
                            | TPMConstant.objectSign) else {
            throw Refusal.tlsKeyCertification("is for a key that can leave its TPM or was not generated in it")
        }
        guard case let .ecc(curve, x, y) = certified.key, curve == TPMConstant.eccNistP256 else {
            throw Refusal.tlsKeyCertification("is for another key than the TLS certificate's")
        }
        let spki: [UInt8]
        do { spki = try VerifyingKey(p256X: x, y: y).subjectPublicKeyInfo() } catch {
            throw Refusal.tlsKeyCertification("is for a key that is not a P-256 point (\(error))")
        }
        guard spki == peerKey else { throw Refusal.tlsKeyCertification("is for another key than the TLS certificate's") }
        guard info.extraData == QuoteBinding.tlsKey(subjectPublicKeyInfo: peerKey) else {
            throw Refusal.tlsKeyCertification("was not made for this certificate's key")
        }
    }

    /// A quote checked (steps 1–4): by the key enrolled for `host`, over `qualifyingData`,
    /// covering the policy's PCRs, whose values are `pcrValues`.
    public struct QuotedPlatform: Sendable {
        public let key: TPMPublicArea
        public let quote: TPMQuoteInfo
        public let pcrs: [Int: Digest32]
    }

    public func checkQuote(_ p: PlatformEvidence, host: String, qualifyingData: [UInt8]) throws -> QuotedPlatform {
        // 1. The enrolled key.
        guard let enrolled = enrolledKeys[host] else { throw Refusal.notEnrolled(host: host) }
        let (area, key) = try Self.attestationKey(p.attestationKey)
        guard Hex.encode(area.name) == enrolled.lowercased() else { throw Refusal.otherKey(host: host) }
        // 2. Its signature over a quote the TPM made.
        let quote: TPMQuoteInfo, signature: TPMSignature
        do {
            quote = try TPMQuoteInfo(decoding: p.quote)
            signature = try TPMSignature(decoding: p.signature)
        } catch { throw Refusal.malformed("\(error)") }
        guard key.isValidSignature(signature.der, for: quote.bytes) else { throw Refusal.badQuoteSignature }
        // 3. Fresh and bound.
        guard quote.extraData == qualifyingData else { throw Refusal.staleQuote }
        // 4. The PCRs.
        let missing = policy.pcrs.filter { !quote.pcrs.contains($0) }
        guard missing.isEmpty else { throw Refusal.pcrsNotCovered(missing: missing) }
        guard p.pcrValues.map(\.index) == quote.pcrs,
              SHA256.hash(p.pcrValues.flatMap(\.value.bytes)).bytes == quote.pcrDigest else { throw Refusal.pcrDigestMismatch }
        return QuotedPlatform(key: area, quote: quote, pcrs: Dictionary(uniqueKeysWithValues: p.pcrValues.map { ($0.index, $0.value) }))
    }

    /// Step 5 for the boot log: it replays to every quoted boot PCR.
    public func checkBoot(_ bytes: [UInt8], quoted q: QuotedPlatform) throws -> BootEventLog {
        let boot: BootEventLog
        do { boot = try BootEventLog(decoding: bytes) } catch { throw Refusal.malformed("\(error)") }
        let bootPCRs = q.quote.pcrs.filter { $0 != PlatformPolicy.imaPCR }
        let replayed = boot.replay(bootPCRs)
        for pcr in bootPCRs where replayed[pcr] != q.pcrs[pcr] { throw Refusal.bootLogDoesNotReplay(pcr: pcr) }
        return boot
    }

    /// IMA's boot_aggregate (its first entry) against the quoted boot PCRs 0–7 (0–9 on newer
    /// kernels), when they are quoted.
    public func checkBootAggregate(_ entries: ArraySlice<IMALog.Entry>, quoted q: QuotedPlatform) throws {
        guard let aggregate = entries.first(where: { $0.path == "boot_aggregate" }), aggregate.fileAlgorithm == "sha256",
              (0...7).allSatisfy({ q.pcrs[$0] != nil }) else { return }
        let first8 = (0...7).compactMap { q.pcrs[$0]?.bytes }.flatMap { $0 }
        let first10 = first8 + (8...9).compactMap { q.pcrs[$0]?.bytes }.flatMap { $0 }
        guard [SHA256.hash(first8).bytes, SHA256.hash(first10).bytes].contains(aggregate.fileDigest) else {
            throw Refusal.bootAggregateMismatch
        }
    }

    /// Step 7: the TPM's counters against the last seen from this key.
    public func observeClock(_ q: QuotedPlatform) throws -> TPMClockLedger.Observation {
        guard let clocks else { return .first }
        do { return try clocks.observe(key: q.key.name, quote: q.quote) } catch { throw Refusal.clock("\(error)") }
    }

    public func check(_ p: PlatformEvidence, host: String, qualifyingData: [UInt8], agentDigest: String?) throws -> PlatformAttestationVerifier.Verdict {
        let q = try checkQuote(p, host: host, qualifyingData: qualifyingData)
        // 5. The logs replay to the quoted PCRs.
        let boot = try checkBoot(p.bootLog, quoted: q)
        let ima: IMALog
        do { ima = try IMALog(decoding: p.imaLog) } catch { throw Refusal.malformed("\(error)") }
        var measured: ArraySlice<IMALog.Entry> = []
        if let pcr10 = q.pcrs[PlatformPolicy.imaPCR] {
            guard let prefix = ima.verifiedPrefix(replaying: pcr10) else { throw Refusal.imaLogDoesNotReplay }
            measured = prefix
            try checkBootAggregate(prefix, quoted: q)
        }
        // 6. The policy.
        let violations = policy.violations(boot: boot, ima: measured, agentDigest: agentDigest, index: index)
        guard violations.isEmpty else { throw Refusal.policy(Array(violations.prefix(3))) }
        // 7. The clock.
        let observation = try observeClock(q)
        let bootPCRs = Set(q.quote.pcrs.filter { $0 != PlatformPolicy.imaPCR })
        return .init(bootEvents: boot.events.filter { bootPCRs.contains($0.pcr) }.count, measuredFiles: measured.count, clock: observation,
                     keyName: Hex.encode(q.key.name))
    }
}
