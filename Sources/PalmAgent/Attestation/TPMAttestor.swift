import Foundation
import PalmCrypto
import PalmProtection
import PalmSecurity
import PalmSupport
import PalmTPM
import PalmWire

/// The destination's hardware-rooted attestation for one connection: the software report of
/// palm-dest's measurement, carrying a quote by this host's TPM over
/// ``QuoteBinding/migration(nonce:exporter:ticketID:)`` (the session's nonce, its TLS exporter,
/// the admitted ticket's id), the quoted PCRs' values and the measured-boot and IMA logs — all of
/// it signed by the host's TLS key, so the evidence is also bound to the certificate the source
/// authenticated. When that key lives in the TPM, the attestation key's certification of it
/// (made once, at start) goes with the quote: the source then knows the session's other end is
/// this TPM's host, not a copy of its key file.
///
/// The logs are read after the quote: the kernel only appends, so they hold at least what the
/// quote covers (the verifier replays the prefix that reaches the quoted PCR 10).
public struct TPMAttestor: AttestationProvider {
    let measurement: Measurement
    let key: SigningKey
    let device: TPMDevice
    let settings: PlatformAttestationSettings
    let admission: TicketAdmission
    /// The attestation key's certification of the TLS key, when the TLS key is in the TPM.
    let tlsKey: PlatformEvidence.KeyCertification?

    public init(measurement: Measurement, key: SigningKey, device: TPMDevice, settings: PlatformAttestationSettings, admission: TicketAdmission,
                tlsKey: PlatformEvidence.KeyCertification?) {
        self.measurement = measurement
        self.key = key
        self.device = device
        self.settings = settings
        self.admission = admission
        self.tlsKey = tlsKey
    }

    public func attest(binding: SessionBinding) throws -> Attestation {
        guard let ticket = admission.admitted else { throw ProtectionRefusal.ticket("no admitted ticket to attest for") }
        let evidence: PlatformEvidence
        do {
            evidence = try Self.evidence(device: device, settings: settings,
                                         qualifyingData: QuoteBinding.migration(nonce: binding.nonce, exporter: binding.exporter,
                                                                                ticketID: ticket.migrationID), tlsKey: tlsKey)
        } catch {
            throw ProtectionRefusal.local("the TPM attestation failed: \(error)")
        }
        return try measurement.report(nonce: binding.nonce, exporter: binding.exporter, key: key, platform: evidence)
    }

    /// A quote over `qualifyingData` with the logs: what a migration's and a heartbeat's
    /// attestation send.
    public static func evidence(device: TPMDevice, settings: PlatformAttestationSettings, qualifyingData: [UInt8],
                                tlsKey: PlatformEvidence.KeyCertification? = nil) throws -> PlatformEvidence {
        let quote = try device.quote(pcrs: settings.pcrs, qualifyingData: qualifyingData)
        let logs = try settings.readLogs()
        return PlatformEvidence(attestationKey: quote.attestationKey, quote: quote.quote, signature: quote.signature, pcrValues: quote.pcrValues,
                                bootLog: logs.boot, imaLog: logs.ima, tlsKey: tlsKey)
    }
}

/// Reading the kernel's measurement logs: a log that does not exist is empty (no measured boot,
/// IMA off — the verifier's policy decides what that means); one larger than the limit is an error.
public enum PlatformLogFile {
    public static func read(_ path: String, limit: Int) throws -> [UInt8] {
        do { return try BoundedFile.read(path, limit: limit) } catch BoundedFile.Failure.unreadable(_, _, missing: true) { return [] }
    }
}
