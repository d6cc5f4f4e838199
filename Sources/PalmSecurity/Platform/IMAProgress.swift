import Foundation
import PalmCrypto
import PalmWire

/// How far a verifier has followed one host's IMA log across quotes, so each quote costs only
/// the entries measured since the last (Keylime's incremental attestation): the entries verified
/// (a quote's PCR 10 reached exactly after them), and those received since but not yet covered
/// by a quote (a long log arrives in chunks; the kernel keeps measuring).
///
/// Guarantees: an entry counts as verified only once a prefix of the log ending at or after it
/// replayed to a quoted PCR 10. Received entries that no quote ever confirms stay pending, up to
/// a bound, then the log is refused (``Refusal/doesNotReplay``). A new boot (another TPM reset
/// count) starts over from the first entry.
public struct IMAProgress: Codable, Sendable, Equatable {
    public var resetCount: UInt32
    public var verifiedCount: Int
    /// PCR 10 after the verified entries (hex).
    public var verifiedValue: String
    /// Received after the verified ones, not yet confirmed by a quote (the binary log).
    public var pending: Data
    public var pendingCount: Int

    public init(resetCount: UInt32) {
        self.resetCount = resetCount
        verifiedCount = 0
        verifiedValue = Digest32.zero.hex
        pending = Data()
        pendingCount = 0
    }

    /// The entry the host should send next.
    public var nextOffset: Int { verifiedCount + pendingCount }

    /// One line for a database column, read at every heartbeat of an enrolled host (JSON took
    /// most of a steady quote's cost at the coordinator): `v1 RESETS VERIFIED PCR10 PENDING BASE64`.
    public var storageText: String {
        "v1 \(resetCount) \(verifiedCount) \(verifiedValue) \(pendingCount) \(pending.base64EncodedString())"
    }

    /// The progress ``storageText`` wrote; nil for anything else (the verifier then starts over).
    public init?(storageText text: String) {
        let fields = text.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count == 6, fields[0] == "v1", let resets = UInt32(fields[1]), let verified = Int(fields[2]), verified >= 0,
              Digest32(hex: String(fields[3])) != nil, let count = Int(fields[4]), count >= 0,
              let bytes = Data(base64Encoded: String(fields[5])) else { return nil }
        resetCount = resets
        verifiedCount = verified
        verifiedValue = String(fields[3])
        pendingCount = count
        pending = bytes
    }

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongOffset(expected: Int, got: Int)
        case doesNotReplay(entries: Int)
        public var description: String {
            switch self {
            case let .wrongOffset(e, g): return "IMA entries sent from \(g), expected from \(e)"
            case let .doesNotReplay(n): return "the IMA log does not replay to the quoted PCR 10 (\(n) entries received that no quote covers)"
            }
        }
    }

    /// Takes the host's entries from `offset` on (`chunk`, the binary log; `complete`: it runs to
    /// the end of the host's log, read after the quote) and a quote's PCR 10: returns the entries
    /// this verifies now (in order), which the caller checks against the policy.
    public mutating func absorb(chunk: [UInt8], offset: Int, complete: Bool, quoted pcr10: Digest32,
                                maxPendingBytes: Int) throws -> [IMALog.Entry] {
        guard offset == nextOffset else { throw Refusal.wrongOffset(expected: nextOffset, got: offset) }
        let pendingEntries = try IMALog(decoding: Array(pending)).entries
        let fresh = try IMALog(decoding: chunk).entries
        let candidates = pendingEntries + fresh
        guard var value = Digest32(hex: verifiedValue) else { throw Refusal.doesNotReplay(entries: candidates.count) }
        if value == pcr10 {
            // Nothing measured since the last confirmation that this quote covers.
            keepPending(candidates, maxPendingBytes: maxPendingBytes)
            return []
        }
        let hasher = PageHasher()
        for (i, e) in candidates.enumerated() where e.pcr == PlatformPolicy.imaPCR {
            value = IMALog.extend(value, with: e.sha256Extension(hasher), hasher)
            if value == pcr10 {
                let confirmed = Array(candidates[...i])
                verifiedCount += confirmed.count
                verifiedValue = value.hex
                let rest = Array(candidates[(i + 1)...])
                pending = Data(IMALog(entries: rest).encoded())
                pendingCount = rest.count
                return confirmed
            }
        }
        // A complete log read after the quote holds every entry it covers: no prefix reaching it
        // means these are not the entries that were measured.
        guard !complete else { throw Refusal.doesNotReplay(entries: candidates.count) }
        keepPending(candidates, maxPendingBytes: maxPendingBytes)
        if pending.count > maxPendingBytes { throw Refusal.doesNotReplay(entries: candidates.count) }
        return []
    }

    private mutating func keepPending(_ entries: [IMALog.Entry], maxPendingBytes: Int) {
        pending = Data(IMALog(entries: entries).encoded())
        pendingCount = entries.count
    }
}
