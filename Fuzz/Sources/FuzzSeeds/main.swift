import Foundation
import PalmCompression
import PalmControl
import PalmHypervisor
import PalmSecurity
import PalmWire

/// Writes the seed corpus (Fuzz/Corpus/<target>/) from real messages: every frame type of the
/// protocol, raw and compressed MEMORY batches of a realistic guest, tickets, attestations,
/// evidence, API requests and the shipped configuration files. Run by scripts/fuzz.sh --seeds;
/// the output is committed.
let root = CommandLine.arguments.dropFirst().first ?? "Fuzz/Corpus"
let repo = CommandLine.arguments.dropFirst(2).first ?? "."

func write(_ target: String, _ name: String, _ bytes: [UInt8]) {
    let dir = "\(root)/\(target)"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: "\(dir)/\(name)", contents: Data(bytes))
}

func d(_ seed: UInt8) -> Digest32 { Digest32([UInt8](repeating: seed, count: 32))! }

func page(_ pfn: UInt64, text: Bool) -> [UInt8] {
    var p = [UInt8](repeating: 0, count: 4096)
    p.withUnsafeMutableBytes {
        if text { SimPageContent.fillText($0.baseAddress!, pageSize: 4096, pfn: pfn, generation: 1) }
        else { SimPageContent.fill($0.baseAddress!, pageSize: 4096, pfn: pfn, generation: 1) }
    }
    return p
}

let ticket = MigrationTicket(epoch: 7, migrationID: Array(0..<16), vm: "vm-7", memoryBytes: 1 << 30, source: d(1), destination: d(2),
                             notBefore: 1_800_000_000, notAfter: 1_800_000_300, nonce: d(3), signature: [0x30, 0x45] + [UInt8](repeating: 7, count: 69))
let attestation = Attestation(sourceNonce: d(4), exporter: d(5), agentDigest: d(6), configDigest: d(7), hypervisor: "sim",
                              hypervisorVersion: "palm-sim 1", timestampMillis: 1_800_000_000_000, signature: [0x30, 0x44, 1, 2, 3])
let manifest = Manifest(imageDigest: d(8), stateDigest: d(9), ticketNonce: d(3), rounds: 4, pagesSent: 300_000, bytesSent: 1 << 30,
                        signature: [0x30, 0x44, 9, 9])

// Frames of every type.
var frames: [(String, Message)] = [
    ("hello", .hello(Hello(ticket: ticket.encoded(), sourceNonce: d(4)))),
    ("attest", .attest(attestation)),
    ("config", .config(VMConfig(name: "vm-7", mode: .preCopy, pageSize: 4096, pageCount: 1024, vcpus: 2, hypervisor: "sim",
                                platform: [], streams: 4, compression: .lz4))),
    ("prepared", .prepared(Prepared(sessionToken: Array(0..<16), handoffMicros: 3000))),
    ("join", .join(Join(sessionToken: Array(0..<16), stream: 2, proof: d(10)))),
    ("joined", .joined),
    ("round-end", .roundEnd(RoundEnd(round: 2, pagesSent: 1000, zeroPages: 10, bytesSent: 4_000_000, durationMicros: 9000, dirtyPages: 33))),
    ("round-applied", .roundApplied(round: 2)),
    ("state", .state([UInt8](repeating: 0xAB, count: 512))),
    ("manifest", .manifest(manifest)),
    ("ready", .ready(signature: [0x30, 0x44, 1])),
    ("commit", .commit(signature: [0x30, 0x44, 2])),
    ("done", .done),
    ("resolve", .resolve(migrationID: Array(0..<16))),
    ("resolution", .resolution(migrationID: Array(0..<16), .committed)),
    ("abort", .abort(AbortNotice(reason: .busy, message: "destination busy"))),
    ("error", .error(AbortNotice(reason: .protocolViolation, message: "unexpected MEMORY"))),
]
let raw = MemoryBatch(round: 1, pages: [.init(pfn: 3, data: page(3, text: false)), .init(pfn: 4, data: nil), .init(pfn: 1023, data: page(1023, text: true))])
frames.append(("memory", .memory(raw)))
for (name, m) in frames { write("FuzzFrames", name, m.encodeFrame()) }
write("FuzzFrames", "stream", frames.flatMap { $0.1.encodeFrame() })

// MEMORY payloads (the frame without its 12-byte header), raw and compressed.
write("FuzzMemoryBatch", "raw", Array(raw.encodeFrame().dropFirst(WireProtocol.headerSize)))
let text = (0..<8).flatMap { page(UInt64($0), text: true) }
for codec in [PageCompression.lz4, .zstd] {
    var out = [UInt8](repeating: 0, count: text.count)
    if let n = text.withUnsafeBytes({ t in out.withUnsafeMutableBytes { PageCodec(codec).compress(t, into: $0) } }) {
        let batch = MemoryBatch(round: 0, pages: (0..<8).map { .init(pfn: UInt64($0), data: []) } + [.init(pfn: 9, data: nil)],
                                codec: codec, compressedData: Array(out[0..<n]))
        write("FuzzMemoryBatch", "\(codec)", Array(batch.encodeFrame().dropFirst(WireProtocol.headerSize)))
    }
}

write("FuzzTicket", "ticket", ticket.encoded())
write("FuzzAttestation", "attest", Array(Message.attest(attestation).encodeFrame().dropFirst(WireProtocol.headerSize)))

let evidence = Evidence(migrationID: ticket.id, recordedBy: "destination", vm: "vm-7", ticket: ticket.encoded(), attestation: attestation,
                        manifest: manifest, readySignature: [0x30, 0x44, 1], commitSignature: [0x30, 0x44, 2],
                        sourceCertificate: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
                        destinationCertificate: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
let enc = JSONEncoder()
enc.dateEncodingStrategy = .iso8601
write("FuzzEvidence", "evidence", Array((try? enc.encode(evidence)) ?? Data()))

func framed(_ request: APIRequest) -> [UInt8] {
    let body = Array((try? JSONEncoder().encode(request)) ?? Data())
    var w = ByteWriter()
    w.write(UInt32(body.count))
    w.write(raw: body)
    return w.bytes
}
let report = HostReport(destinationAddress: "10.0.0.2:7410", cpus: 4, cpuLoad: 0.3, memoryTotal: 8 << 30, memoryUsed: 2 << 30,
                        vms: [VMReport(name: "vm-1", memoryBytes: 1 << 30, dirtyRate: 1200)])
write("FuzzCoordinatorRequest", "heartbeat", framed(APIRequest(action: "agent.heartbeat", report: report)))
write("FuzzCoordinatorRequest", "migrate", framed(APIRequest(action: "migrate", arguments: ["vm": "vm-1", "to": "host-b", "mode": "pre-copy"])))
write("FuzzCoordinatorRequest", "hosts", framed(APIRequest(action: "hosts")) + framed(APIRequest(action: "history", arguments: ["limit": "10"])))

for name in ["source", "dest", "coordinator", "policy"] {
    if let text = FileManager.default.contents(atPath: "\(repo)/deploy/\(name).toml") { write("FuzzConfig", name, Array(text)) }
}

// Xen: a PVH guest's platform description (128 MiB at the bottom, the special pages below 4 GiB),
// encoded by hand from the format XenPlatformConfig documents, and a domain state.
func xenState() -> [UInt8] {
    var w = ByteWriter()
    w.write(UInt8(1))                                        // version
    w.write(UInt32(0)); w.write(UInt64(1_234_567_890)); w.write(UInt32(2_400_000)); w.write(UInt32(1))  // TSC
    w.write(lengthPrefixed: (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7) })  // HVM context
    let params: [(UInt32, UInt64)] = [(1, 0xfeffc), (17, 0xfefff), (38, 1)]
    w.write(UInt32(params.count))
    for (i, v) in params { w.write(i); w.write(v) }
    return w.bytes
}
func xenPlatform(version: UInt8, state: [UInt8]) -> [UInt8] {
    var w = ByteWriter()
    w.write(version); w.write(UInt32(4)); w.write(UInt32(17))
    let ranges: [(UInt64, UInt64)] = [(0, 32768), (0xfeff8, 8)]
    w.write(UInt32(ranges.count))
    for (first, count) in ranges { w.write(first); w.write(count) }
    w.write(lengthPrefixed: Array(#"{"c_info":{"type":"pvh","name":"pvh"},"b_info":{"max_memkb":131072,"target_memkb":131072}}"#.utf8))
    w.write(lengthPrefixed: [UInt8](repeating: 1, count: 24 * 4))   // CPUID leaves
    w.write(lengthPrefixed: [UInt8](repeating: 2, count: 16 * 2))   // MSRs
    if version >= 2 { w.write(lengthPrefixed: state) }
    return w.bytes
}
write("FuzzXenPlatform", "platform-v2", xenPlatform(version: 2, state: xenState()))
write("FuzzXenPlatform", "platform-v2-no-state", xenPlatform(version: 2, state: []))
write("FuzzXenPlatform", "platform-v1", xenPlatform(version: 1, state: []))
write("FuzzXenPlatform", "state", xenState())

// A TPM's evidence, as a swtpm produced it (tpm2_createprimary/tpm2_quote): an attestation key,
// a quote of PCRs 0–10 and its signature; measurement logs built from the formats' documentation.
func hex(_ s: String) -> [UInt8] { Hex.decode(s) ?? [] }
let akPublic = hex("0023000b00050072000000100018000b000300100020d515c8a851ac4ed274a08702f4e6d421fa1034de176a44a372db3e6895a45253"
                   + "002096a6b3e725dd0cdb5d905db454a3b82edc57402ce9d768b179b0fa3728db0eab")
let quoteInfo = hex("ff54434780180022000bc1278b8ccc62943bade76bc36a945a9b621e4f3c9a36cc06ec4897d0df356b66002000112233445566778899aabb"
                    + "ccddeeff00112233445566778899aabbccddeeff0000000000000ef1000000070000000000201910230016363600000001000b03ff0700"
                    + "0020627f6149015f853f26db2f3dffba1b7c30b3b74b87c5cfb9f346c1616e3636d0")
let quoteSignature = hex("0018000b00208f65bbf34cfb88eeaa05de35c2a6a6bc4bcc61c55bdc4347937cdaeb0b5b128700201325090b626ef235ae1c43458f22872"
                         + "38df7296f8d365ea9be9802a921d0f079")
let bootLog = BootEventLog(events: [
    .init(pcr: 0, type: 0x8, sha256: d(11), data: Array("SeaBIOS".utf8)),
    .init(pcr: 4, type: 0xD, sha256: d(12), data: Array("/boot/vmlinuz".utf8)),
    .init(pcr: 7, type: 0x4, sha256: d(13), data: [0, 0, 0, 0]),
], startupLocality: 3).encoded()
let imaLog = IMALog(entries: [IMALog.Entry(path: "boot_aggregate", sha256: d(14)), IMALog.Entry(path: "/usr/bin/palm-dest", sha256: d(15)),
                              IMALog.Entry(path: "/usr/lib/x86_64-linux-gnu/libc.so.6", sha256: d(16))]).encoded()
write("FuzzPlatformEvidence", "quote", [0] + quoteInfo)
write("FuzzPlatformEvidence", "signature", [1] + quoteSignature)
write("FuzzPlatformEvidence", "attestation-key", [2] + akPublic)
write("FuzzPlatformEvidence", "boot-log", [3] + bootLog)
write("FuzzPlatformEvidence", "ima-log", [4] + imaLog)
write("FuzzPlatformEvidence", "ima-chunk", [5] + imaLog)
// The attestation key's TPM2_Certify of palm's TLS key, as swtpm made it.
let tlsKeyPublic = hex("0023000b00040072000000100018000b000300100020ea456a799eb83a607e7dfbaf861537f7d9a687653d264ee045094eea2c14501a"
                       + "002056d1d7f49b7c98891d1357884f1d213c1a24ac47f19ee5f9a899a99e0d679ab5")
let certifyInfo = hex("ff54434780170022000bde4cb5dff9a728506e96ed9129918e3db2faad278abc6e4526e2d99a2bed3c230020b507b50e2153879acb77352e"
                      + "563508a0f4802bbcdc2a4e57267acd468c6e188100000000000001eb00000002000000000120191023001636360022000bfdd78c6d1ec8f987"
                      + "9e9166fbfc0d3add3e336d35803a959cc4bbd04971ad4f280022000b20f86caa6aba215a85fa077b36d9843b21bd7de46fb879efe9beafb9cb1f44a8")
let certifySignature = hex("0018000b00209befcb38aa63dbc901e66fc742dc082719b8f63b9f09cd2663a379b2dded7f4800201ac4298fba49cc11f339cba1c681e8"
                           + "083816f7d31627b9c3ca6d786111f5a53c")
write("FuzzPlatformEvidence", "certify", [6] + certifyInfo)
let platformAttestation = Attestation(sourceNonce: d(4), exporter: d(5), agentDigest: d(6), configDigest: d(7), hypervisor: "xen",
                                      hypervisorVersion: "4.17.7", timestampMillis: 1_800_000_000_000,
                                      platform: PlatformEvidence(attestationKey: akPublic, quote: quoteInfo, signature: quoteSignature,
                                                                 pcrValues: (0...10).map { .init(index: $0, value: d(UInt8($0))) },
                                                                 bootLog: bootLog, imaLog: imaLog,
                                                                 tlsKey: .init(publicArea: tlsKeyPublic, certifyInfo: certifyInfo,
                                                                               signature: certifySignature)),
                                      signature: [0x30, 0x44, 1, 2, 3])
write("FuzzAttestation", "attest-tpm", Array(Message.attest(platformAttestation).encodeFrame().dropFirst(WireProtocol.headerSize)))

print("seed corpus written to \(root)")
