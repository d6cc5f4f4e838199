import Foundation
import PalmSupport
import PalmWire

/// What recent hand-offs to each destination really cost beyond their last pages: the downtime
/// minus the final round's transfer and the digest sealing it caused. Once a destination has one,
/// the downtime prediction uses the median of its last ``samplesPerDestination`` instead of its
/// model of the parts (pause, signatures, durable records, round trips, the destination's share):
/// the model cannot see how loaded this host's disk is when the commit record is written or how
/// quickly two agents' threads are scheduled; a measured hand-off includes both.
///
/// Bounded: at most ``samplesPerDestination`` samples for each of at most ``maxDestinations``
/// destinations (the least recently migrated to is forgotten first). Kept in one small JSON file
/// written with ``DurableFile`` after a migration, never during its downtime. A missing or
/// unreadable file is an empty history: the prediction falls back to its model, nothing fails.
public final class HandoffHistory: Sendable {
    public static let samplesPerDestination = 5
    public static let maxDestinations = 64

    struct Entry: Codable, Equatable {
        var destination: String
        var seconds: [Double]
    }

    public let path: String
    private let entries: LockedValueBox<[Entry]>   // least recently used first

    public init(path: String) {
        self.path = path
        let stored = FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode([Entry].self, from: $0) } ?? []
        entries = LockedValueBox(Array(stored.filter { e in
            !e.seconds.isEmpty && e.seconds.allSatisfy { $0.isFinite && $0 >= 0 && $0 < 3600 }
        }.map { Entry(destination: $0.destination, seconds: Array($0.seconds.suffix(Self.samplesPerDestination))) }
         .suffix(Self.maxDestinations)))
    }

    /// The median fixed hand-off cost measured to `destination`, nil before the first.
    public func typical(for destination: Digest32) -> Double? {
        entries.withLockedValue { all in
            guard let e = all.first(where: { $0.destination == destination.hex }) else { return nil }
            let sorted = e.seconds.sorted(), mid = sorted.count / 2
            // Of two samples, their mean: one slow hand-off must not set the next prediction alone.
            return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        }
    }

    /// Adds one measured hand-off and stores the history (best effort: a history that cannot be
    /// written only makes the next prediction use the model).
    public func record(_ seconds: Double, for destination: Digest32) {
        guard seconds.isFinite, seconds >= 0 else { return }
        let snapshot = entries.withLockedValue { all -> [Entry] in
            var e = all.firstIndex { $0.destination == destination.hex }.map { all.remove(at: $0) }
                ?? Entry(destination: destination.hex, seconds: [])
            e.seconds = Array((e.seconds + [seconds]).suffix(Self.samplesPerDestination))
            all.append(e)
            if all.count > Self.maxDestinations { all.removeFirst(all.count - Self.maxDestinations) }
            return all
        }
        if let data = try? JSONEncoder().encode(snapshot) { try? DurableFile.write(Array(data), to: path) }
    }
}
