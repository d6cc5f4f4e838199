import Foundation
import Logging
import PalmControl
import PalmSecurity
import PalmSupport
import PalmTPM
import PalmWire

/// What palm-source tells the coordinator about this host's TPM, answering the coordinator's
/// last request: the TPM's identity (at start, and when asked), the secret of a credential
/// challenge (TPM2_ActivateCredential), a quote over the coordinator's nonce with the boot log
/// and the IMA entries from where the coordinator is (at most the bytes it allows).
///
/// A TPM failure is logged and leaves that part out: the coordinator asks again, and a host whose
/// quotes stop coming becomes untrusted there.
public final class PlatformReporter: Sendable {
    let device: TPMDevice
    let settings: PlatformAttestationSettings
    let host: String
    let logger: Logger
    private let identitySent = LockedValueBox(false)

    public init(settings: PlatformAttestationSettings, host: String, logger: Logger) {
        device = TPMDevice(tcti: settings.tpm, timeout: settings.tpmTimeout)
        self.settings = settings
        self.host = host
        self.logger = logger
    }

    /// `report` reached the coordinator (its heartbeat was answered): the identity need not be
    /// sent again unasked. Until then every heartbeat carries it — a coordinator that was not up
    /// for the first one still learns it.
    public func delivered(_ report: PlatformReport?) {
        if report?.identity != nil { identitySent.withLockedValue { $0 = true } }
    }

    /// The report for `request` (and the identity, until delivered, unasked); nil when there is
    /// nothing to say.
    public func answer(_ request: PlatformRequest?) -> PlatformReport? {
        var report = PlatformReport()
        if request?.identity == true || !identitySent.current {
            do {
                let ek = try device.endorsementIdentity()
                report.identity = PlatformIdentity(endorsementKey: Data(ek.publicArea), endorsementCertificate: Data(ek.certificate),
                                                   attestationKey: Data(try device.attestationKey()))
            } catch {
                logger.error("cannot read this host's TPM identity for the coordinator: \(error)")
            }
        }
        if let blob = request?.credentialBlob, let secret = request?.encryptedSecret {
            do {
                report.activatedCredential = Data(try device.activateCredential(credentialBlob: Array(blob), encryptedSecret: Array(secret)))
            } catch {
                logger.error("cannot activate the coordinator's enrollment credential with this host's TPM: \(error)")
            }
        }
        if let nonce = request?.quoteNonce, let request {
            do { report.quote = try quote(nonce: nonce, offset: request.imaOffset, maxBytes: request.imaMaxBytes) } catch {
                logger.error("cannot quote this host's TPM for the coordinator: \(error)")
            }
        }
        return report == PlatformReport() ? nil : report
    }

    private func quote(nonce: Data, offset: Int, maxBytes: Int) throws -> PlatformQuote {
        let q = try device.quote(pcrs: settings.pcrs, qualifyingData: QuoteBinding.heartbeat(nonce: Array(nonce), host: host))
        let logs = try settings.readLogs()
        return try PlatformQuote.answering(nonce: nonce, quote: q.quote, signature: q.signature, pcrValues: q.pcrValues,
                                           bootLog: logs.boot, imaLog: logs.ima, offset: offset, maxBytes: maxBytes)
    }

}
