import Foundation
import PalmCrypto
import PalmSecurity
import PalmTPM
import PalmWire

/// A test host whose software TPM was extended exactly as a measured boot and the kernel's IMA
/// would have, with the logs that say so in files where palm-dest reads them: firmware, kernel,
/// initrd and command line in the boot log; boot_aggregate, systemd, libc and palm-dest itself
/// in the IMA log. ``measure(file:)`` does what IMA does when a file is executed or mapped.
public final class MeasuredHost: @unchecked Sendable {
    public let tpm: SoftwareTPM
    public let device: TPMDevice
    public let directory: String
    public private(set) var boot = BootEventLog(events: [])
    public private(set) var ima = IMALog(entries: [])

    public var bootLogPath: String { directory + "/binary_bios_measurements" }
    public var imaLogPath: String { directory + "/binary_runtime_measurements" }

    public static let kernel = SHA256.hash(Array("vmlinuz-6.1.0-28-amd64".utf8))
    public static let initrd = SHA256.hash(Array("initrd.img-6.1.0-28-amd64".utf8))
    public static let commandLine = SHA256.hash(Array("root=/dev/vda ro ima_policy=tcb".utf8))

    /// `agent`: palm-dest's path and the digest IMA records for it.
    public init(manufacturer: SoftwareTPMManufacturer? = nil, agent: (path: String, digest: Digest32)) throws {
        tpm = try SoftwareTPM(manufacturer: manufacturer)
        device = TPMDevice(tcti: tpm.tcti, timeout: 60)
        directory = tpm.directory + "/securityfs"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try measureBoot([
            .init(pcr: 0, type: 0x8, sha256: SHA256.hash(Array("SeaBIOS 1.16".utf8)), data: Array("SeaBIOS 1.16".utf8)),
            .init(pcr: 4, type: 0xD, sha256: Self.kernel, data: Array("/boot/vmlinuz-6.1.0-28-amd64".utf8)),
            .init(pcr: 9, type: 0xD, sha256: Self.initrd, data: Array("/boot/initrd.img-6.1.0-28-amd64".utf8)),
            .init(pcr: 8, type: 0xD, sha256: Self.commandLine, data: Array("root=/dev/vda ro ima_policy=tcb".utf8)),
        ] + (0...7).map { .init(pcr: $0, type: 0x4, sha256: SHA256.hash([0, 0, 0, 0]), data: [0, 0, 0, 0]) })
        try measure(IMALog.Entry(path: "boot_aggregate", sha256: SHA256.hash(try device.readPCRs(Array(0...7)).flatMap(\.value.bytes))))
        try measure(IMALog.Entry(path: "/usr/lib/systemd/systemd", sha256: SHA256.hash(Array("systemd".utf8))))
        try measure(IMALog.Entry(path: "/usr/lib/x86_64-linux-gnu/libc.so.6", sha256: SHA256.hash(Array("libc".utf8))))
        try measure(IMALog.Entry(path: agent.path, sha256: agent.digest))
    }

    /// Appends boot events to the log and extends the TPM's PCRs with them.
    public func measureBoot(_ events: [BootEventLog.Event]) throws {
        for e in events { try device.extend(pcr: e.pcr, with: e.sha256) }
        boot = BootEventLog(events: boot.events + events)
        try Data(boot.encoded()).write(to: URL(fileURLWithPath: bootLogPath))
    }

    /// Appends one IMA entry and extends PCR 10 with it, as the kernel does.
    public func measure(_ entry: IMALog.Entry) throws {
        try device.extend(pcr: 10, with: entry.sha256Extension)
        ima = IMALog(entries: ima.entries + [entry])
        try Data(ima.encoded()).write(to: URL(fileURLWithPath: imaLogPath))
    }

    /// What IMA does when `path` is executed or mapped executable: measures its content.
    public func measure(file path: String) throws {
        try measure(IMALog.Entry(path: path, sha256: try SHA256.hash(file: path)))
    }

    /// Forgets the logs after a power cycle (the TPM's PCRs were reset) and measures the same
    /// boot and files again — all but `path` (a file not run since).
    public func remeasureAfterReboot(dropping path: String? = nil) throws {
        let (events, entries) = (boot.events, ima.entries.filter { $0.path != path })
        boot = BootEventLog(events: [])
        ima = IMALog(entries: [])
        try measureBoot(events)
        for e in entries { try measure(e) }
    }

    /// A host certificate (in `pki`, named `name`) for this TPM's TLS key, from a request the TPM
    /// signed: what `palm-dest tls-key --csr` and `palm-ca host --csr` make for a real host.
    public func tlsCertificate(_ pki: TestPKI, name: String) throws -> String {
        let key = try TPMTLSKey(device: device).signingKey()
        let csr = directory + "/\(name).csr"
        try CertificateRequest.pem(commonName: name, key: key).write(toFile: csr, atomically: true, encoding: .utf8)
        try pki.mintHost(name, request: csr)
        return pki.cert(name)
    }

    /// The attestation key's name (hex): what enrollment records.
    public func keyName() throws -> String { Hex.encode(try TPMPublicArea(decoding: try device.attestationKey()).name) }

    /// A policy that allows exactly this platform as it is now.
    public func policy(agents: [String]) -> PlatformPolicy {
        PlatformPolicy().learning(boot: boot, ima: ima.entries[...], agents: agents)
    }

    /// palm-dest's `[attestation]` keys for this host.
    public var destinationTable: String {
        """
        mode = "tpm"
        tpm = "\(tpm.tcti)"
        boot_log = "\(bootLogPath)"
        ima_log = "\(imaLogPath)"
        """
    }
}
