import FuzzSupport
import PalmSecurity
import PalmWire

/// A destination's TPM evidence as a verifier decodes it. The first byte picks the decoder:
/// 0 TPMS_ATTEST (a quote), 1 TPMT_SIGNATURE, 2 TPMT_PUBLIC (an attestation key), 3 the
/// measured-boot event log, 4 the IMA log, 5 the IMA log followed incrementally, 6 TPMS_ATTEST of a
/// certification (the TLS key's) checked against a fixed key; the rest is its input. A decoded log re-encodes to bytes that decode to the same log; the policy and the
/// incremental follower take whatever decodes without trapping.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPlatformEvidence(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = input(start, count)
    guard let selector = bytes.first else { return 0 }
    let body = Array(bytes.dropFirst())
    switch selector % 7 {
    case 0:
        if let q = try? TPMQuoteInfo(decoding: body) {
            require(q.bytes == body && q.pcrs == q.pcrs.sorted(), "a quote decoded to something else")
        }
    case 1:
        _ = try? TPMSignature(decoding: body)
    case 2:
        if let area = try? TPMPublicArea(decoding: body) {
            require(area.name.count == 34, "a name is nameAlg ‖ SHA-256")
            _ = try? PlatformEvidenceCheck.attestationKey(body)
        }
    case 3:
        if let log = try? BootEventLog(decoding: body) {
            require((try? BootEventLog(decoding: log.encoded())) == log, "a boot log does not survive re-encoding")
            _ = log.replay(Array(0...9))
            _ = PlatformPolicy().violations(boot: log, ima: [], agentDigest: nil)
        }
    case 4:
        if let log = try? IMALog(decoding: body) {
            require((try? IMALog(decoding: log.encoded())) == log, "an IMA log does not survive re-encoding")
            _ = log.verifiedPrefix(replaying: .zero)
            _ = PlatformPolicy().learning(boot: .empty, ima: log.entries[...]).violations(boot: .empty, ima: log.entries[...], agentDigest: "00")
        }
    case 6:
        if let c = try? TPMCertifyInfo(decoding: body) {
            require(c.bytes == body, "a certification decoded to something else")
            let certification = PlatformEvidence.KeyCertification(publicArea: body, certifyInfo: body, signature: body)
            _ = try? PlatformEvidenceCheck.checkTLSKey(certification, attestationKey: body, peerKey: body)
        }
    default:
        var progress = IMAProgress(resetCount: 0)
        _ = try? progress.absorb(chunk: body, offset: 0, complete: body.count % 2 == 0, quoted: .zero, maxPendingBytes: 1 << 20)
    }
    return 0
}
