internal import CTSS2ESys

/// What went wrong talking to a TPM, named for the operator.
public enum TPMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The TCTI could not be loaded or connected (no such device, nothing listening, a bad
    /// configuration string).
    case unavailable(tcti: String, detail: String)
    /// A TPM command failed; `code` is the TPM's (or tpm2-tss's) response code, decoded.
    case command(String, code: UInt32, detail: String)
    /// The TPM did not answer within the configured time.
    case timeout(command: String, seconds: Double)
    /// The TPM has no endorsement key certificate where the TCG profile puts it.
    case noEndorsementCertificate(index: UInt32)
    /// The TPM answered with something palm cannot use.
    case unexpected(String)

    public var description: String {
        switch self {
        case let .unavailable(t, d): return "TPM '\(t)' is not usable: \(d)"
        case let .command(c, code, d): return "TPM command \(c) failed: \(d) (0x\(String(code, radix: 16)))"
        case let .timeout(c, s): return "the TPM did not answer \(c) within \(s) s"
        case let .noEndorsementCertificate(i): return "the TPM has no endorsement key certificate at NV index 0x\(String(i, radix: 16))"
        case let .unexpected(d): return "unexpected TPM answer: \(d)"
        }
    }

    /// tpm2-tss's TSS2_RC of a timeout (TSS2_BASE_RC_TRY_AGAIN / TSS2_BASE_RC_IO_ERROR in any layer).
    static func from(_ rc: UInt32, command: String, timeout: Double) -> TPMError {
        let base = rc & 0xFFFF
        if base == 9 /* TSS2_BASE_RC_TRY_AGAIN */ { return .timeout(command: command, seconds: timeout) }
        let text = Tss2_RC_Decode(rc).map { String(cString: $0) } ?? "unknown"
        return .command(command, code: rc, detail: text)
    }
}
