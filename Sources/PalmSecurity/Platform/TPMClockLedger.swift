import Foundation
import PalmSupport
import PalmWire

/// The last TPM clock seen from each attestation key, kept in a file: a verifier notices a
/// reboot (reset count up) or a resume (restart count up), and refuses a quote whose counters
/// went back — the sign of a TPM whose state was restored, or of a replayed quote.
///
/// Guarantees: ``observe(key:quote:)`` records the quote's counters only when it accepts them;
/// a refused quote leaves the ledger as it was.
public final class TPMClockLedger: Sendable {
    public struct Reading: Codable, Sendable, Equatable {
        public var resetCount: UInt32
        public var restartCount: UInt32
        public var clock: UInt64
    }

    /// What a quote's counters say against the last ones seen from its key.
    public enum Observation: Sendable, Equatable, CustomStringConvertible {
        case first
        case same
        case rebooted(from: UInt32, to: UInt32)
        case resumed(from: UInt32, to: UInt32)

        public var description: String {
            switch self {
            case .first: return "first quote seen from this TPM"
            case .same: return "no reboot since the last quote"
            case let .rebooted(a, b): return "the host rebooted since the last quote (TPM reset count \(a) → \(b))"
            case let .resumed(a, b): return "the host resumed since the last quote (TPM restart count \(a) → \(b))"
            }
        }
    }

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case wentBack(key: String, last: Reading, now: Reading)
        public var description: String {
            switch self {
            case let .wentBack(key, last, now):
                return "the TPM clock of key \(key.prefix(16))… went back (reset \(last.resetCount) → \(now.resetCount), restart \(last.restartCount) → \(now.restartCount), clock \(last.clock) → \(now.clock)): a restored TPM state or a replayed quote"
            }
        }
    }

    public let path: String?
    private let readings: LockedValueBox<[String: Reading]>

    /// A ledger kept in `path` (nil: in memory only).
    public init(path: String?) {
        self.path = path
        var loaded: [String: Reading] = [:]
        if let path, let data = FileManager.default.contents(atPath: path),
           let decoded = try? JSONDecoder().decode([String: Reading].self, from: data) {
            loaded = decoded
        }
        readings = LockedValueBox(loaded)
    }

    public func observe(key: [UInt8], quote: TPMQuoteInfo) throws -> Observation {
        let name = Hex.encode(key)
        let now = Reading(resetCount: quote.resetCount, restartCount: quote.restartCount, clock: quote.clock)
        return try readings.withLockedValue { all in
            let observation: Observation
            if let last = all[name] {
                if now.resetCount < last.resetCount
                    || (now.resetCount == last.resetCount && now.restartCount < last.restartCount)
                    || (now.resetCount == last.resetCount && now.restartCount == last.restartCount && now.clock < last.clock) {
                    throw Refusal.wentBack(key: name, last: last, now: now)
                }
                if now.resetCount > last.resetCount {
                    observation = .rebooted(from: last.resetCount, to: now.resetCount)
                } else if now.restartCount > last.restartCount {
                    observation = .resumed(from: last.restartCount, to: now.restartCount)
                } else {
                    observation = .same
                }
            } else {
                observation = .first
            }
            all[name] = now
            if let path, let data = try? JSONEncoder().encode(all) { try? DurableFile.write(Array(data), to: path) }
            return observation
        }
    }
}
