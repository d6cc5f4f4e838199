import PalmSecurity
import PalmTestSupport
import PalmCrypto
import PalmTLS
import PalmWire
import Testing

/// The ticket format (v2) and the coordinator trust set, without a network.
@Suite("Migration tickets and trusted coordinators")
struct MigrationTicketTests {
    let pki = TestPKI.shared

    func fp(_ name: String) throws -> Digest32 { try CertificateIdentity.load(pemFile: pki.cert(name)).fingerprint }

    func issue(key: String = "coord", epoch: UInt64 = 7) throws -> MigrationTicket {
        try TicketIssuer(key: SigningKey(pemFile: pki.key(key)))
            .issue(vm: "vm-1", memoryBytes: 1 << 30, source: fp("client"), destination: fp("server"), now: 1_800_000_000, validity: 300, epoch: epoch)
    }

    func validator(_ certs: [String]) throws -> TicketValidator {
        TicketValidator(coordinators: try CoordinatorTrust(certificateFiles: certs.map { pki.cert($0) }), clockSkew: 0)
    }

    @Test("a v2 ticket round-trips with its epoch and validates against a trust set that lists its signer")
    func roundTrip() throws {
        let t = try issue()
        #expect(try MigrationTicket.decode(t.encoded()) == t)
        let ok = try validator(["coord2", "coord"]).validate(t.encoded(), destination: fp("server"), peer: fp("client"), now: 1_800_000_010)
        #expect(ok.epoch == 7)
        #expect(throws: TicketError.badSignature) {
            try validator(["coord2"]).validate(t.encoded(), destination: fp("server"), peer: fp("client"), now: 1_800_000_010)
        }
    }

    @Test("the epoch is signed: changed after signing, the ticket is forged; reissued under a new epoch, it verifies with the same nonce")
    func epochSigned() throws {
        let t = try issue()
        var raised = t
        raised.epoch = 8
        #expect(throws: TicketError.badSignature) {
            try validator(["coord"]).validate(raised.encoded(), destination: fp("server"), peer: fp("client"), now: 1_800_000_010)
        }
        let renewed = try TicketIssuer(key: SigningKey(pemFile: pki.key("coord"))).reissue(t, epoch: 8)
        let ok = try validator(["coord"]).validate(renewed.encoded(), destination: fp("server"), peer: fp("client"), now: 1_800_000_010)
        #expect(ok.epoch == 8 && ok.nonce == t.nonce && ok.migrationID == t.migrationID)
    }

    @Test("a version-1 ticket (no epoch) is malformed, by name")
    func versionOne() throws {
        var bytes = try issue().encoded()
        bytes[0] = 1
        #expect(throws: TicketError.malformed(.invalidValue(field: "ticket.version", value: 1))) { try MigrationTicket.decode(bytes) }
    }

    @Test("a trust set is never empty and holds at most 16 coordinators; it trusts exactly the listed fingerprints")
    func trustSet() throws {
        #expect(throws: CoordinatorTrust.TrustError.empty) { try CoordinatorTrust(certificateFiles: []) }
        #expect(throws: CoordinatorTrust.TrustError.tooMany(17)) {
            try CoordinatorTrust(certificateFiles: Array(repeating: pki.cert("coord"), count: 17))
        }
        let trust = try CoordinatorTrust(certificateFiles: [pki.cert("coord"), pki.cert("coord2")])
        let (coord, coord2, server) = (try fp("coord"), try fp("coord2"), try fp("server"))
        #expect(trust.trusts(coord) && trust.trusts(coord2) && !trust.trusts(server))
    }
}
