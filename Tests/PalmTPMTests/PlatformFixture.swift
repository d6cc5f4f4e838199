import Foundation
import PalmCrypto
import PalmSecurity
import PalmTestSupport
import PalmTPM
import PalmWire

/// One test host's platform: a software TPM whose PCRs were extended exactly as a measured boot
/// and IMA would have, with the logs that say so, and a policy that allows them.
final class PlatformFixture: @unchecked Sendable {
    let swtpm: SoftwareTPM
    let tpm: TPMDevice
    var boot: BootEventLog
    var ima: IMALog
    let agentDigest: Digest32
    let host: String

    static let kernel = SHA256.hash(Array("vmlinuz-6.1.0-28-amd64".utf8))
    static let initrd = SHA256.hash(Array("initrd.img-6.1.0-28-amd64".utf8))
    static let commandLine = SHA256.hash(Array("root=/dev/vda ro ima_policy=tcb".utf8))

    init(host: String = "host-b", manufacturer: SoftwareTPMManufacturer? = nil) throws {
        self.host = host
        swtpm = try SoftwareTPM(manufacturer: manufacturer)
        tpm = TPMDevice(tcti: swtpm.tcti, timeout: 10)
        agentDigest = SHA256.hash(Array("palm-dest build \(host)".utf8))
        boot = BootEventLog(events: [])
        ima = IMALog(entries: [])
        try measureBoot([
            .init(pcr: 0, type: 0x8, sha256: SHA256.hash(Array("SeaBIOS 1.16".utf8)), data: Array("SeaBIOS 1.16".utf8)),
            .init(pcr: 4, type: 0xD, sha256: Self.kernel, data: Array("/boot/vmlinuz-6.1.0-28-amd64".utf8)),
            .init(pcr: 9, type: 0xD, sha256: Self.initrd, data: Array("/boot/initrd.img-6.1.0-28-amd64".utf8)),
            .init(pcr: 8, type: 0xD, sha256: Self.commandLine, data: Array("root=/dev/vda ro ima_policy=tcb".utf8)),
        ] + (0...7).map { .init(pcr: $0, type: 0x4, sha256: SHA256.hash([0, 0, 0, 0]), data: [0, 0, 0, 0]) })
        try measure(IMALog.Entry(path: "boot_aggregate", sha256: try bootAggregate()))
        try measure(IMALog.Entry(path: "/usr/lib/systemd/systemd", sha256: SHA256.hash(Array("systemd".utf8))))
        try measure(IMALog.Entry(path: "/usr/lib/x86_64-linux-gnu/libc.so.6", sha256: SHA256.hash(Array("libc".utf8))))
        try measure(IMALog.Entry(path: "/usr/bin/palm-dest", sha256: agentDigest))
    }

    /// Appends boot events to the log and extends the TPM's PCRs with them.
    func measureBoot(_ events: [BootEventLog.Event]) throws {
        for e in events { try tpm.extend(pcr: e.pcr, with: e.sha256) }
        boot = BootEventLog(events: boot.events + events)
    }

    /// Appends one IMA entry and extends PCR 10 with it, as the kernel does.
    func measure(_ entry: IMALog.Entry) throws {
        try tpm.extend(pcr: 10, with: entry.sha256Extension)
        ima = IMALog(entries: ima.entries + [entry])
    }

    /// SHA-256 over PCRs 0–7, as IMA's boot_aggregate is.
    func bootAggregate() throws -> Digest32 {
        SHA256.hash(try tpm.readPCRs(Array(0...7)).flatMap(\.value.bytes))
    }

    /// The attestation key's name (hex): what enrollment records.
    func keyName() throws -> String { Hex.encode(try TPMPublicArea(decoding: try tpm.attestationKey()).name) }

    /// A policy that allows exactly this platform as it is now.
    func policy() -> PlatformPolicy {
        PlatformPolicy().learning(boot: boot, ima: ima.entries[...], agents: [agentDigest.hex])
    }

    /// Evidence for a migration session, as palm-dest sends it.
    func evidence(binding: [UInt8], pcrs: [Int] = PlatformPolicy.defaultPCRs) throws -> PlatformEvidence {
        let q = try tpm.quote(pcrs: pcrs, qualifyingData: binding)
        return PlatformEvidence(attestationKey: q.attestationKey, quote: q.quote, signature: q.signature, pcrValues: q.pcrValues,
                                bootLog: boot.encoded(), imaLog: ima.encoded())
    }
}
