import PalmCrypto
import PalmTLS
import PalmWire

/// The coordinator's signed, expiring, single-use authorization for one migration: VM *v* of a
/// given size moves from the host whose certificate has fingerprint *S* to the one with *D*.
///
/// ```text
///   version u8 (2) | leader epoch u64 | migration id 16 | vm string | memory u64 | source fp 32
///   | destination fp 32 | not-before u64 | not-after u64 (Unix seconds) | nonce 32
///   | signature (u32 length + DER)
/// ```
/// The signature is ECDSA/SHA-256 by the issuing coordinator's key over `"palm-ticket-v2"` followed
/// by every field before it. The nonce makes each ticket unique; destinations remember it until
/// expiry. The epoch is the issuing leader's lease epoch (0 for a ticket signed offline without
/// one): a destination refuses a ticket of a lower epoch than the highest it has accepted, so a
/// deposed leader that still runs cannot get a migration executed.
///
/// Versioning: any change to the fields is a new `version` and a new signing domain; a destination
/// accepts exactly the version it implements (v1 tickets, which carry no epoch, are refused as
/// malformed). Tickets live minutes, so coordinators and agents upgrade together.
public struct MigrationTicket: Equatable, Sendable {
    public static let version: UInt8 = 2
    /// The issuing leader's lease epoch.
    public var epoch: UInt64
    public var migrationID: [UInt8]
    public var vm: String
    public var memoryBytes: UInt64
    public var source: Digest32
    public var destination: Digest32
    public var notBefore: UInt64
    public var notAfter: UInt64
    public var nonce: Digest32
    public var signature: [UInt8]

    public init(epoch: UInt64 = 0, migrationID: [UInt8], vm: String, memoryBytes: UInt64, source: Digest32, destination: Digest32,
                notBefore: UInt64, notAfter: UInt64, nonce: Digest32, signature: [UInt8] = []) {
        self.epoch = epoch
        self.migrationID = migrationID
        self.vm = vm
        self.memoryBytes = memoryBytes
        self.source = source
        self.destination = destination
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.nonce = nonce
        self.signature = signature
    }

    /// Migration id as 32 hex digits.
    public var id: String { Hex.encode(migrationID) }

    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.write(raw: Array("palm-ticket-v2".utf8))
        encodeBody(into: &w)
        return w.bytes
    }

    private func encodeBody(into w: inout ByteWriter) {
        w.write(MigrationTicket.version)
        w.write(epoch)
        w.write(raw: migrationID)
        w.write(string: vm)
        w.write(memoryBytes)
        w.write(raw: source.bytes)
        w.write(raw: destination.bytes)
        w.write(notBefore)
        w.write(notAfter)
        w.write(raw: nonce.bytes)
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        encodeBody(into: &w)
        w.write(lengthPrefixed: signature)
        return w.bytes
    }

    /// Decodes a ticket; any malformation is a ``TicketError/malformed(_:)``.
    public static func decode(_ bytes: [UInt8]) throws -> MigrationTicket {
        do {
            return try bytes.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                let version = try r.readUInt8("ticket.version")
                guard version == MigrationTicket.version else {
                    throw WireError.invalidValue(field: "ticket.version", value: UInt64(version))
                }
                let t = MigrationTicket(
                    epoch: try r.readUInt64("ticket.epoch"),
                    migrationID: try r.readBytes(16, "ticket.id"),
                    vm: try r.readString("ticket.vm", limit: 255),
                    memoryBytes: try r.readUInt64("ticket.memory"),
                    source: try r.readDigest("ticket.source"),
                    destination: try r.readDigest("ticket.destination"),
                    notBefore: try r.readUInt64("ticket.notBefore"),
                    notAfter: try r.readUInt64("ticket.notAfter"),
                    nonce: try r.readDigest("ticket.nonce"),
                    signature: try r.readLengthPrefixed("ticket.signature", limit: 512))
                if r.remaining != 0 { throw WireError.trailingBytes(message: .hello, count: r.remaining) }
                return t
            }
        } catch let e as WireError {
            throw TicketError.malformed(e)
        }
    }
}

/// Why a ticket was refused.
public enum TicketError: Error, Equatable, Sendable, CustomStringConvertible {
    case missing
    case malformed(WireError)
    case badSignature
    case notYetValid(notBefore: UInt64, now: UInt64)
    case expired(notAfter: UInt64, now: UInt64)
    case wrongDestination
    case wrongSource
    case replayed(nonce: String)
    case vmMismatch(String)
    /// Issued under an older leader epoch than one this host has accepted (a deposed coordinator),
    /// or the new highest epoch could not be recorded.
    case staleEpoch(ticket: UInt64, highest: UInt64)

    public var description: String {
        switch self {
        case .missing: return "no migration ticket"
        case let .malformed(e): return "malformed ticket: \(e)"
        case .badSignature: return "ticket signature does not verify against any listed coordinator certificate (forged?)"
        case let .notYetValid(nb, now): return "ticket not valid before \(nb) (now \(now))"
        case let .expired(na, now): return "ticket expired at \(na) (now \(now))"
        case .wrongDestination: return "ticket names another destination"
        case .wrongSource: return "ticket names another source than the connected peer"
        case let .replayed(n): return "ticket nonce \(n.prefix(16))… was already used (replay)"
        case let .vmMismatch(m): return "ticket does not cover this VM: \(m)"
        case let .staleEpoch(t, h):
            return "ticket issued under leader epoch \(t), but a leader of epoch \(h) has issued tickets here since (a deposed coordinator?), or the epoch could not be recorded"
        }
    }
}

/// Signs tickets with the coordinator key (the coordinator daemon and `palm-coordinator ticket issue`).
public struct TicketIssuer {
    let key: SigningKey

    public init(key: SigningKey) { self.key = key }

    /// A ticket signed now; `epoch` is the issuing leader's lease epoch.
    public func issue(vm: String, memoryBytes: UInt64, source: Digest32, destination: Digest32,
                      now: UInt64, validity: UInt64, epoch: UInt64 = 0, migrationID: [UInt8]? = nil) throws -> MigrationTicket {
        var rng = SystemRandomNumberGenerator()
        var t = MigrationTicket(
            epoch: epoch, migrationID: migrationID ?? (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }, vm: vm, memoryBytes: memoryBytes,
            source: source, destination: destination, notBefore: now, notAfter: now + validity,
            nonce: Digest32.random())
        t.signature = try key.sign(t.signedBytes)
        return t
    }

    /// The same ticket (migration, hosts, window, nonce) signed anew under `epoch`: what a new
    /// leader hands out for a migration its predecessor ticketed but never handed out.
    public func reissue(_ ticket: MigrationTicket, epoch: UInt64) throws -> MigrationTicket {
        var t = ticket
        t.epoch = epoch
        t.signature = try key.sign(t.signedBytes)
        return t
    }
}

/// Checks a ticket on the destination: a listed coordinator's signature, validity window (± clock
/// skew), this host as destination, the TLS peer as source. Replay is the ``ReplayCache``'s job,
/// the epoch floor the agent's.
public struct TicketValidator: Sendable {
    let coordinators: CoordinatorTrust
    let clockSkew: UInt64

    public init(coordinators: CoordinatorTrust, clockSkew: UInt64) {
        self.coordinators = coordinators
        self.clockSkew = clockSkew
    }

    public func validate(_ bytes: [UInt8], destination: Digest32, peer: Digest32, now: UInt64) throws -> MigrationTicket {
        guard !bytes.isEmpty else { throw TicketError.missing }
        let t = try MigrationTicket.decode(bytes)
        guard coordinators.verifies(t.signature, for: t.signedBytes) else { throw TicketError.badSignature }
        guard now + clockSkew >= t.notBefore else { throw TicketError.notYetValid(notBefore: t.notBefore, now: now) }
        guard now <= t.notAfter + clockSkew else { throw TicketError.expired(notAfter: t.notAfter, now: now) }
        guard t.destination == destination else { throw TicketError.wrongDestination }
        guard t.source == peer else { throw TicketError.wrongSource }
        return t
    }
}
