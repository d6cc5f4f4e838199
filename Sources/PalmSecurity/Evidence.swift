import Foundation
import PalmCrypto
import PalmTLS
import PalmWire

/// What both agents keep of a finished hand-off, so anyone holding the cluster's certificates
/// can check later who authorized, attested, sent and accepted what: the ticket (coordinator
/// signature), the destination's attestation report, the source's signed manifest, the
/// destination's READY and the source's COMMIT signatures, and both hosts' certificates.
public struct Evidence: Codable, Equatable, Sendable {
    public var migrationID: String
    /// "source" or "destination": who wrote this file.
    public var recordedBy: String
    public var vm: String
    public var ticket: Data
    /// ATTEST frame.
    public var attestation: Data
    /// MANIFEST frame.
    public var manifest: Data
    public var readySignature: Data
    public var commitSignature: Data
    public var sourceCertificate: String
    public var destinationCertificate: String
    public var recordedAt: Date

    public init(migrationID: String, recordedBy: String, vm: String, ticket: [UInt8], attestation: Attestation, manifest: Manifest,
                readySignature: [UInt8], commitSignature: [UInt8], sourceCertificate: String, destinationCertificate: String) {
        self.migrationID = migrationID
        self.recordedBy = recordedBy
        self.vm = vm
        self.ticket = Data(ticket)
        self.attestation = Data(Message.attest(attestation).encodeFrame())
        self.manifest = Data(Message.manifest(manifest).encodeFrame())
        self.readySignature = Data(readySignature)
        self.commitSignature = Data(commitSignature)
        self.sourceCertificate = sourceCertificate
        self.destinationCertificate = destinationCertificate
        recordedAt = Date()
    }

    /// Writes `DIR/ID.evidence.json` (mode 0600).
    public func save(in directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/\(migrationID).evidence.json"
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .iso8601
        guard FileManager.default.createFile(atPath: path, contents: try e.encode(self), attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        return path
    }

    public static func load(_ path: String) throws -> Evidence {
        guard let data = FileManager.default.contents(atPath: path) else { throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path]) }
        return try decode(data)
    }

    /// An evidence file's content (JSON).
    public static func decode(_ data: Data) throws -> Evidence {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return try d.decode(Evidence.self, from: data)
    }

    /// The destination's attestation (its ATTEST frame; large with a TPM's logs).
    public var decodedAttestation: Attestation? {
        guard case let .attest(a)? = try? Message.decodeFrame(Array(attestation), limits: .attestation(maxBytes: 256 << 20)) else { return nil }
        return a
    }

    /// How the destination attested, for the reader: its TPM, or its own report only.
    public var attestationSummary: String {
        guard let a = decodedAttestation else { return "unreadable" }
        guard let p = a.platform else { return "software: the destination's own signed report, not rooted in a TPM" }
        return "tpm: a quote of PCRs \(p.pcrValues.map { String($0.index) }.joined(separator: ",")) with \(p.bootLog.count + p.imaLog.count) bytes of boot and IMA logs; "
            + (p.tlsKey == nil ? "the TLS key from a file" : "the TLS key in the TPM, certified by its attestation key")
    }

    /// One named check and its outcome.
    public struct Check: Sendable {
        public var name: String
        public var passed: Bool
        public var detail: String
    }

    /// Verifies every signature and every binding between the pieces. `coordinators` are the
    /// coordinators one of which must have signed the ticket.
    public func verify(coordinators: CoordinatorTrust) -> [Check] {
        var checks: [Check] = []
        func check(_ name: String, _ detail: String = "", _ body: () throws -> Bool) {
            do { checks.append(Check(name: name, passed: try body(), detail: detail)) } catch {
                checks.append(Check(name: name, passed: false, detail: "\(error)"))
            }
        }
        let ticket = try? MigrationTicket.decode(Array(self.ticket))
        let sourceID = try? CertificateIdentity.load(pem: sourceCertificate)
        let destID = try? CertificateIdentity.load(pem: destinationCertificate)
        let sourceKey = try? VerifyingKey(certificatePEM: sourceCertificate)
        let destKey = try? VerifyingKey(certificatePEM: destinationCertificate)
        let attestation = decodedAttestation
        var manifest: Manifest?
        if case let .manifest(m)? = try? Message.decodeFrame(Array(self.manifest)) { manifest = m }

        check("ticket signed by a listed coordinator") {
            guard let ticket else { return false }
            return coordinators.verifies(ticket.signature, for: ticket.signedBytes)
        }
        check("ticket names this migration, VM and hosts") {
            guard let ticket, let sourceID, let destID else { return false }
            return ticket.id == migrationID && ticket.vm == vm && ticket.source == sourceID.fingerprint
                && ticket.destination == destID.fingerprint
        }
        check("attestation signed by the destination") {
            guard let attestation, let destKey else { return false }
            return destKey.isValidSignature(attestation.signature, for: attestation.signedBytes)
        }
        check("manifest signed by the source and bound to the ticket") {
            guard let manifest, let sourceKey, let ticket else { return false }
            return sourceKey.isValidSignature(manifest.signature, for: manifest.signedBytes) && manifest.ticketNonce == ticket.nonce
        }
        check("READY signed by the destination") {
            guard let manifest, let destKey else { return false }
            return destKey.isValidSignature(Array(readySignature), for: HandoffSignature.ready(manifest))
        }
        check("COMMIT signed by the source") {
            guard let manifest, let sourceKey else { return false }
            return sourceKey.isValidSignature(Array(commitSignature), for: HandoffSignature.commit(manifest))
        }
        return checks
    }
}
