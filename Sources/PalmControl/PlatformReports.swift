import Foundation
import PalmSecurity
import PalmWire

/// What a host's palm-source says about its TPM in a heartbeat: its identity when it starts or
/// when the coordinator asks (enrollment), the answer to a credential challenge, a quote over
/// the coordinator's nonce (continuous attestation). Absent: the host has no TPM configured.
public struct PlatformReport: Codable, Sendable, Equatable {
    public var identity: PlatformIdentity?
    /// The secret recovered by TPM2_ActivateCredential from the last challenge.
    public var activatedCredential: Data?
    public var quote: PlatformQuote?

    public init(identity: PlatformIdentity? = nil, activatedCredential: Data? = nil, quote: PlatformQuote? = nil) {
        self.identity = identity
        self.activatedCredential = activatedCredential
        self.quote = quote
    }
}

/// A TPM's endorsement key (TPMT_PUBLIC), its certificate (DER) and palm's attestation key.
public struct PlatformIdentity: Codable, Sendable, Equatable {
    public var endorsementKey: Data
    public var endorsementCertificate: Data
    public var attestationKey: Data

    public init(endorsementKey: Data, endorsementCertificate: Data, attestationKey: Data) {
        self.endorsementKey = endorsementKey
        self.endorsementCertificate = endorsementCertificate
        self.attestationKey = attestationKey
    }
}

/// A quote over ``QuoteBinding/heartbeat(nonce:host:)`` with the boot log and the IMA entries
/// from `imaOffset` on (at most what the coordinator asked for; `imaComplete` when they run to
/// the end of the log).
public struct PlatformQuote: Codable, Sendable, Equatable {
    public var nonce: Data
    public var quote: Data
    public var signature: Data
    public var pcrs: [Int]
    public var pcrValues: [Data]
    public var bootLog: Data
    public var imaOffset: Int
    public var imaEntries: Data
    public var imaComplete: Bool

    public init(nonce: Data, quote: Data, signature: Data, pcrs: [Int], pcrValues: [Data], bootLog: Data, imaOffset: Int, imaEntries: Data,
                imaComplete: Bool) {
        self.nonce = nonce
        self.quote = quote
        self.signature = signature
        self.pcrs = pcrs
        self.pcrValues = pcrValues
        self.bootLog = bootLog
        self.imaOffset = imaOffset
        self.imaEntries = imaEntries
        self.imaComplete = imaComplete
    }

    /// The answer to a quote request: the quote's pieces, the boot log, and the IMA entries of
    /// `imaLog` (the binary log, read after the quote) from `offset`, at most `maxBytes` of them.
    public static func answering(nonce: Data, quote: [UInt8], signature: [UInt8], pcrValues: [PlatformEvidence.PCRValue], bootLog: [UInt8],
                                 imaLog: [UInt8], offset: Int, maxBytes: Int) throws -> PlatformQuote {
        let entries = try IMALog(decoding: imaLog).entries
        var chunk: [IMALog.Entry] = [], size = 0, complete = true
        for e in entries.dropFirst(min(max(offset, 0), entries.count)) {
            let n = IMALog(entries: [e]).encoded().count
            if size + n > maxBytes {
                complete = false
                break
            }
            chunk.append(e)
            size += n
        }
        return PlatformQuote(nonce: nonce, quote: Data(quote), signature: Data(signature), pcrs: pcrValues.map(\.index),
                             pcrValues: pcrValues.map { Data($0.value.bytes) }, bootLog: Data(bootLog), imaOffset: offset,
                             imaEntries: Data(IMALog(entries: chunk).encoded()), imaComplete: complete)
    }

    /// As the verifier reads it (`attestationKey`: the enrolled one).
    public func evidence(attestationKey: [UInt8]) -> PlatformEvidence? {
        guard pcrs.count == pcrValues.count, pcrs.count <= PlatformEvidence.pcrCount else { return nil }
        var values: [PlatformEvidence.PCRValue] = []
        for (i, v) in zip(pcrs, pcrValues) {
            guard let d = Digest32(Array(v)) else { return nil }
            values.append(.init(index: i, value: d))
        }
        return PlatformEvidence(attestationKey: attestationKey, quote: Array(quote), signature: Array(signature), pcrValues: values,
                                bootLog: Array(bootLog), imaLog: [])
    }
}

/// What the coordinator asks of a host's TPM in its orders.
public struct PlatformRequest: Codable, Sendable, Equatable {
    /// Send the TPM's identity (the coordinator has none, or an operator asked to re-enroll).
    public var identity: Bool
    /// A credential to activate (TPM2_ActivateCredential): TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET.
    public var credentialBlob: Data?
    public var encryptedSecret: Data?
    /// Quote over this nonce (with the host's name, ``QuoteBinding/heartbeat(nonce:host:)``).
    public var quoteNonce: Data?
    /// The first IMA entry to send, and at most how many bytes of entries.
    public var imaOffset: Int
    public var imaMaxBytes: Int

    public init(identity: Bool = false, credentialBlob: Data? = nil, encryptedSecret: Data? = nil, quoteNonce: Data? = nil,
                imaOffset: Int = 0, imaMaxBytes: Int = 256 << 10) {
        self.identity = identity
        self.credentialBlob = credentialBlob
        self.encryptedSecret = encryptedSecret
        self.quoteNonce = quoteNonce
        self.imaOffset = imaOffset
        self.imaMaxBytes = imaMaxBytes
    }
}
