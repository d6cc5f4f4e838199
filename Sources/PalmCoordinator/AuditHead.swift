import PalmSupport
import Foundation
import PalmSecurity
import PalmCrypto
import PalmTLS
import PalmWire

/// The audit chain's head — the sequence number and hash of its newest entry, signed with the
/// coordinator key — kept *outside* the database: in a head file beside it (rewritten durably
/// after every committed append) and in the journal (event `audit.head`). Deleting the newest
/// entries, or putting back an older copy of the database, leaves the chain itself intact; only
/// an anchor like this shows it. `palm-coordinator audit verify --head FILE` checks the chain
/// against it: the entry the head names must exist and carry that hash.
public struct AuditHead: Codable, Equatable, Sendable {
    public var seq: Int64
    public var hash: String
    /// ECDSA (DER, hex) by the coordinator key over ``signedBytes``.
    public var signature: String

    public init(seq: Int64, hash: String, signature: String) {
        self.seq = seq
        self.hash = hash
        self.signature = signature
    }

    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.write(raw: Array("palm-audit-head-v1".utf8))
        w.write(UInt64(bitPattern: seq))
        w.write(raw: Array(hash.utf8))
        return w.bytes
    }

    static func signed(seq: Int64, hash: String, key: SigningKey) throws -> AuditHead {
        var head = AuditHead(seq: seq, hash: hash, signature: "")
        head.signature = Hex.encode(try key.sign(head.signedBytes))
        return head
    }

    /// True when one of the listed coordinators signed this head.
    public func isSigned(by coordinators: CoordinatorTrust) -> Bool {
        guard let sig = Hex.decode(signature) else { return false }
        return coordinators.verifies(sig, for: signedBytes)
    }

    public func save(to path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        try DurableFile.write(Array(try e.encode(self)), to: path)
    }

    public static func load(from path: String) throws -> AuditHead {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 4096 else {
            throw AuditLog.AuditError.unreadableHead(path)
        }
        do { return try JSONDecoder().decode(AuditHead.self, from: data) } catch { throw AuditLog.AuditError.unreadableHead(path) }
    }
}
