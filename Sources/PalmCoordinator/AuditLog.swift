import Foundation
import PalmMetrics
import PalmSecurity
import PalmCrypto
import PalmTLS
import PalmWire

/// The coordinator's append-only audit log. Every entry is chained to the one before it — its
/// hash covers the previous entry's hash and all of its own fields — and the hash is signed with
/// the coordinator key. `verify` walks the chain and names the first entry that was edited,
/// reordered or deleted. Removing entries from the end of the log, or restoring an older copy of
/// the database, is not visible in the chain itself: after every committed append the signed
/// ``AuditHead`` is written to `headFile` and handed to `onHead` (the daemon logs it to the
/// journal), and `verify(coordinators:head:)` checks the chain against such an anchor.
public final class AuditLog: @unchecked Sendable {
    let store: CoordinatorStore
    let key: SigningKey?
    /// Where the head is kept outside the database (nil: nowhere).
    public let headFile: String?
    /// Called with every new head once its append committed (the journal's copy).
    public var onHead: @Sendable (AuditHead) -> Void = { _ in }

    /// `key` may be nil for a log that is only read and verified.
    public init(store: CoordinatorStore, key: SigningKey?, headFile: String? = nil) {
        self.store = store
        self.key = key
        self.headFile = headFile
    }

    public struct Entry: Equatable, Sendable {
        public var seq: Int64
        public var time: Double
        public var actor: String
        public var role: String
        public var action: String
        public var target: String
        public var allowed: Bool
        public var detail: String
        public var prevHash: String
        public var hash: String
        public var signature: String

        /// The bytes the hash covers.
        var canonical: [UInt8] {
            var w = ByteWriter()
            w.write(raw: Array("palm-audit-v1".utf8))
            w.write(raw: Array(prevHash.utf8))
            w.write(UInt64(bitPattern: seq))
            w.write(UInt64(time * 1000))
            for field in [actor, role, action, target, detail] { w.write(lengthPrefixed: Array(field.utf8)) }
            w.write(allowed ? UInt8(1) : 0)
            return w.bytes
        }
    }

    public static let genesis = String(repeating: "0", count: 64)

    /// Appends a decision (allowed or denied) and returns the entry.
    @discardableResult
    public func append(actor: String, role: String, action: String, target: String, allowed: Bool,
                       detail: String = "", time: Date = Date()) throws -> Entry {
        try store.write { db in
            try append(in: db, actor: actor, role: role, action: action, target: target, allowed: allowed, detail: detail, time: time)
        }
    }

    /// Appends inside the caller's transaction, so a decision and its effect commit together.
    @discardableResult
    public func append(in db: StoreConnection, actor: String, role: String, action: String, target: String, allowed: Bool,
                       detail: String = "", time: Date = Date()) throws -> Entry {
        guard let key else { throw AuditError.readOnly }
        do {
            let last = try db.row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            var e = Entry(seq: (last?["seq"] as Int64? ?? 0) + 1, time: time.timeIntervalSince1970, actor: actor, role: role,
                          action: action, target: target, allowed: allowed, detail: detail,
                          prevHash: last?["hash"] ?? AuditLog.genesis, hash: "", signature: "")
            e.hash = SHA256.hash(e.canonical).hex
            e.signature = Hex.encode(try key.sign(Array(e.hash.utf8)))
            try db.execute(sql: """
                INSERT INTO audit (seq, time, actor, role, action, target, allowed, detail, prev_hash, hash, signature)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [e.seq, e.time, e.actor, e.role, e.action, e.target, e.allowed, e.detail, e.prevHash, e.hash, e.signature])
            let head = try AuditHead.signed(seq: e.seq, hash: e.hash, key: key)
            let file = headFile, announce = onHead
            db.afterCommit({
                if let file { try? head.save(to: file) }
                announce(head)
                CoordinatorMetrics().auditEntry()  // counted once committed
            })
            return e
        }
    }

    public func entries() throws -> [Entry] {
        try store.read { db in
            try db.rows("SELECT * FROM audit ORDER BY seq").map { r in
                Entry(seq: try r.get("seq"), time: try r.get("time"), actor: try r.get("actor"), role: try r.get("role"), action: try r.get("action"), target: try r.get("target"),
                      allowed: try r.get("allowed"), detail: try r.get("detail"), prevHash: try r.get("prev_hash"), hash: try r.get("hash"), signature: try r.get("signature"))
            }
        }
    }

    public enum AuditError: Error, Equatable, CustomStringConvertible {
        case readOnly
        /// Entry `seq`'s content does not match its hash.
        case edited(seq: Int64)
        /// Entry `seq`'s signature is not the coordinator's.
        case badSignature(seq: Int64)
        /// Entries between `after` and `seq` are missing.
        case deleted(after: Int64, seq: Int64)
        /// Entry `seq` does not follow the entry before it.
        case reordered(seq: Int64)
        /// The head names entry `head`, but the log ends at `last`: entries were removed from its end.
        case truncated(head: Int64, last: Int64)
        /// Entry `seq` is not the one the head names: the log was rolled back and written anew.
        case rolledBack(seq: Int64)
        /// The head is not signed by the coordinator.
        case headNotSigned
        case unreadableHead(String)

        public var description: String {
            switch self {
            case .readOnly: return "the audit log was opened without the coordinator key"
            case let .edited(s): return "audit entry \(s) was edited (its content does not match its hash)"
            case let .badSignature(s): return "audit entry \(s) is not signed by any listed coordinator"
            case let .deleted(a, s): return "audit entries between \(a) and \(s) were deleted"
            case let .reordered(s): return "audit entry \(s) does not chain to the entry before it (reordered or replaced)"
            case let .truncated(h, l): return "the audit head names entry \(h) but the log ends at \(l): entries were removed from its end"
            case let .rolledBack(s): return "audit entry \(s) is not the one the head names: the log was rolled back and written anew"
            case .headNotSigned: return "the audit head is not signed by any listed coordinator"
            case let .unreadableHead(p): return "cannot read an audit head from \(p)"
            }
        }
    }

    /// Checks the whole chain and, given a `head` kept outside the database, that the log still
    /// holds the entry it names (no tail truncation, no rollback); throws the first problem, naming
    /// the entry. Returns the entry count.
    @discardableResult
    public func verify(coordinators: CoordinatorTrust, head: AuditHead? = nil) throws -> Int {
        let all = try verifiedChain(coordinators)
        if let head {
            guard head.isSigned(by: coordinators) else { throw AuditError.headNotSigned }
            try Self.check(all, holdsEntry: head.seq, hash: head.hash)
        }
        return all.count
    }

    /// The same against the newest entry as the journal recorded it (`audit.head` events carry
    /// the sequence and hash): the chain must still hold that very entry. Returns the entry count.
    @discardableResult
    public func verify(coordinators: CoordinatorTrust, headSeq: Int64, headHash: String) throws -> Int {
        let all = try verifiedChain(coordinators)
        try Self.check(all, holdsEntry: headSeq, hash: headHash)
        return all.count
    }

    /// Every entry, once the whole chain has checked out: each signed by one of `coordinators`
    /// (the leader of its time; the chain runs on across leaders).
    private func verifiedChain(_ coordinators: CoordinatorTrust) throws -> [Entry] {
        let all = try entries()
        var previous: Entry?
        for e in all {
            if let p = previous, e.seq != p.seq + 1 { throw AuditError.deleted(after: p.seq, seq: e.seq) }
            if previous == nil, e.seq != 1 { throw AuditError.deleted(after: 0, seq: e.seq) }
            guard SHA256.hash(e.canonical).hex == e.hash else { throw AuditError.edited(seq: e.seq) }
            guard let sig = Hex.decode(e.signature), coordinators.verifies(sig, for: Array(e.hash.utf8)) else {
                throw AuditError.badSignature(seq: e.seq)
            }
            guard e.prevHash == (previous?.hash ?? AuditLog.genesis) else { throw AuditError.reordered(seq: e.seq) }
            previous = e
        }
        return all
    }

    /// Tail truncation shows as a missing entry `seq`, a rollback as one with another hash.
    private static func check(_ all: [Entry], holdsEntry seq: Int64, hash: String) throws {
        guard let named = all.first(where: { $0.seq == seq }) else {
            throw AuditError.truncated(head: seq, last: all.last?.seq ?? 0)
        }
        guard named.hash == hash else { throw AuditError.rolledBack(seq: seq) }
    }
}
