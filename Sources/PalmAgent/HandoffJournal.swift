import PalmSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Durable per-migration records, one small JSON file per migration id in a directory, written
/// with ``DurableFile`` (write-to-temp, fsync, rename, fsync of the directory): after a crash at
/// any instant a record is either entirely old or entirely new. Both agents keep the hand-off state here.
public final class HandoffJournal: Sendable {
    public let directory: String
    /// How long the last writes took (fsyncs included), newest last, at most 16. Its lock also
    /// serializes every file operation of the journal.
    private let writeTimes = LockedValueBox([Double]())

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    private func path(_ id: String) -> String { "\(directory)/\(id).json" }

    public func write(_ id: String, _ record: [String: String]) throws {
        try writeTimes.withLockedValue { try write(id, record, times: &$0) }
    }

    /// The median duration of this journal's recent durable writes (nil before the first): what
    /// the next one is expected to cost, steadier than any single fsync.
    public var typicalWriteSeconds: Double? {
        let times = writeTimes.current
        guard !times.isEmpty else { return nil }
        return times.sorted()[times.count / 2]
    }

    /// Writes with the lock held (`times` is the locked value).
    private func write(_ id: String, _ record: [String: String], times: inout [Double]) throws {
        let started = MonotonicClock.now()
        defer {
            times.append(MonotonicClock.now() - started)
            if times.count > 16 { times.removeFirst() }
        }
        let data = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
        try DurableFile.write(Array(data), to: path(id))
    }

    public func read(_ id: String) -> [String: String]? {
        writeTimes.withLockedValue { _ in readUnlocked(id) }
    }

    private func readUnlocked(_ id: String) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: path(id)),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: String] else { return nil }
        return obj
    }

    public func remove(_ id: String) {
        writeTimes.withLockedValue { _ in _ = unlink(path(id)) }
    }

    /// When the record of `id` was last written.
    public func modified(_ id: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path(id)))?[.modificationDate] as? Date
    }

    /// Every record, by id.
    public func all() -> [(id: String, record: [String: String])] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return names.compactMap { name in
            let id = String(name.dropLast(5))
            return read(id).map { (id, $0) }
        }
    }

    /// Runs `body` on the record of `id` under the journal's lock and stores what it returns.
    @discardableResult
    public func update<R>(_ id: String, _ body: (inout [String: String]?) throws -> R) throws -> R {
        try writeTimes.withLockedValue { times in
            var record = readUnlocked(id)
            let result = try body(&record)
            if let record { try write(id, record, times: &times) } else { unlink(path(id)) }
            return result
        }
    }
}

/// The destination's ledger: for every migration it saw, `incoming`, then exactly one of
/// `committed` (recorded before the VM resumes) or `aborted` (recorded before the partial VM is
/// discarded, or when a source asks about a migration that never committed). The transition is
/// atomic, so a COMMIT arriving late on a dying connection can never follow an answered RESOLVE.
///
/// A VM can come back to a host it left, so several records can name the same VM. Each record
/// carries `opened`, a number larger than that of every record written before it on this host:
/// the record with the largest `opened` for a VM is the migration that created whatever
/// incoming copy of it exists (the record is written before the incoming VM is created).
public final class DestinationLedger: @unchecked Sendable {
    public let journal: HandoffJournal
    private let lastOpened: LockedValueBox<UInt64>

    public init(directory: String) throws {
        journal = try HandoffJournal(directory: directory)
        lastOpened = LockedValueBox(journal.all().map { DestinationLedger.opened($0.record) }.max() ?? 0)
    }

    /// A record's `opened` ordinal (0 for records written before it existed).
    public static func opened(_ record: [String: String]) -> UInt64 { record["opened"].flatMap(UInt64.init) ?? 0 }

    /// The record of the migration that created `vm`'s incoming copy: the newest of `records`
    /// (default: every record, read now) naming `vm` (among records without an ordinal, one still
    /// `incoming` wins).
    public func latest(vm: String, in records: [(id: String, record: [String: String])]? = nil) -> (id: String, record: [String: String])? {
        (records ?? journal.all()).filter { $0.record["vm"] == vm }.max { a, b in
            let (oa, ob) = (Self.opened(a.record), Self.opened(b.record))
            if oa != ob { return oa < ob }
            return a.record["state"] != "incoming" && b.record["state"] == "incoming"
        }
    }

    public enum LedgerError: Error, Equatable, CustomStringConvertible {
        case alreadyAborted(String)
        public var description: String {
            switch self { case let .alreadyAborted(id): return "migration \(id) was already declared aborted" }
        }
    }

    public func recordIncoming(id: String, vm: String, source: String) throws {
        let opened = lastOpened.withLockedValue { last -> UInt64 in
            last += 1
            return last
        }
        try journal.write(id, ["state": "incoming", "vm": vm, "source": source, "opened": String(opened)])
    }

    /// Records the commit; fails if the migration was declared aborted meanwhile.
    public func commit(id: String) throws {
        try journal.update(id) { record in
            guard record?["state"] != "aborted" else { throw LedgerError.alreadyAborted(id) }
            var r = record ?? [:]
            r["state"] = "committed"
            record = r
        }
    }

    /// The verdict for `id`: committed if a commit was recorded; otherwise aborted, and a recorded
    /// migration is marked so (a COMMIT arriving later is refused). A migration never recorded
    /// here — it never reached CONFIG, so it cannot commit — is answered aborted and *nothing is
    /// created*: questions about random ids cost no file.
    public func resolve(id: String) throws -> Resolution {
        try journal.update(id) { record in
            guard var r = record else { return .aborted }
            if r["state"] == "committed" { return .committed }
            r["state"] = "aborted"
            record = r
            return .aborted
        }
    }

    /// Removes finished migrations (committed or aborted) last written more than `age` seconds ago;
    /// returns how many. Records still `incoming` belong to start-up recovery and stay.
    @discardableResult
    public func prune(olderThan age: Double, now: Date = Date()) -> Int {
        var removed = 0
        for (id, record) in journal.all() where record["state"] != "incoming" {
            guard let written = journal.modified(id), now.timeIntervalSince(written) > age else { continue }
            journal.remove(id)
            removed += 1
        }
        return removed
    }

    public func record(_ id: String) -> [String: String]? { journal.read(id) }
}

import PalmWire
