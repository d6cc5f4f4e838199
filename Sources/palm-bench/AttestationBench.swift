import ArgumentParser
import Foundation
import PalmControl
import PalmCoordinator
import PalmCrypto
import PalmSecurity
import PalmSupport
import PalmTPM
import PalmWire

/// A platform for the benchmarks: ten boot components in PCRs 0–9 and `entries` measured files,
/// the software TPM's PCRs extended to match, as a measured boot and IMA would have.
func simulatedPlatform(_ device: TPMDevice, entries: Int) throws -> (BootEventLog, IMALog) {
    var events: [BootEventLog.Event] = []
    for pcr in 0...9 {
        let e = BootEventLog.Event(pcr: pcr, type: 0xD, sha256: SHA256.hash(Array("boot \(pcr)".utf8)), data: Array("component \(pcr)".utf8))
        events.append(e)
        try device.extend(pcr: pcr, with: e.sha256)
    }
    let ima = IMALog(entries: (0..<entries).map { IMALog.Entry(path: "/usr/lib/x86_64-linux-gnu/lib-\($0).so", sha256: SHA256.hash(Array("f\($0)".utf8))) })
    try device.extend(pcr: 10, withEach: ima.entries.map(\.sha256Extension))
    return (BootEventLog(events: events), ima)
}

/// What hardware-rooted attestation costs, on a software TPM (swtpm, started by bench.sh): the
/// destination's quote (with its PCR reads), the source's verification of quote and logs, and the
/// verification of a long IMA log alone, a signature by the TLS key in the TPM against one by a key
/// file. Prints "name p50_ms p99_ms" lines; nothing asserted.
struct AttestationCost: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attestation",
                                                    abstract: "TPM quote and verification latency, IMA log verification.")
    @Option(help: "The TPM (a tpm2-tss TCTI string).") var tcti: String
    @Option(help: "IMA entries measured before the quotes.") var entries = 10_000
    @Option(help: "Quotes to time.") var runs = 50
    @Option(help: "A host certificate and key, for the software attestation's cost in the same run.") var cert: String
    @Option var key: String

    func run() throws {
        let device = TPMDevice(tcti: tcti, timeout: 30)
        let (boot, ima) = try simulatedPlatform(device, entries: entries)
        let bootBytes = boot.encoded(), imaBytes = ima.encoded()
        let akName = Hex.encode(try TPMPublicArea(decoding: try device.attestationKey()).name)
        let policy = PlatformPolicy().learning(boot: boot, ima: ima.entries[...])
        let check = PlatformEvidenceCheck(policy: policy, enrolledKeys: ["bench": akName], clocks: nil)
        let index = check.index

        var quoteTimes: [Double] = [], verifyTimes: [Double] = []
        for _ in 0..<runs {
            let binding = QuoteBinding.migration(nonce: .random(), exporter: .random(), ticketID: Digest32.randomBytes(16))
            let t0 = MonotonicClock.now()
            let q = try device.quote(pcrs: PlatformPolicy.defaultPCRs, qualifyingData: binding)
            let t1 = MonotonicClock.now()
            let evidence = PlatformEvidence(attestationKey: q.attestationKey, quote: q.quote, signature: q.signature, pcrValues: q.pcrValues,
                                            bootLog: bootBytes, imaLog: imaBytes)
            _ = try check.check(evidence, host: "bench", qualifyingData: binding, agentDigest: nil)
            quoteTimes.append(t1 - t0)
            verifyTimes.append(MonotonicClock.now() - t1)
        }
        // The IMA log alone: decode, replay to PCR 10, every entry against the policy.
        let pcr10 = try device.readPCRs([10])[0].value
        var imaTimes: [Double] = []
        for _ in 0..<max(5, runs / 5) {
            let t0 = MonotonicClock.now()
            let log = try IMALog(decoding: imaBytes)
            guard let prefix = log.verifiedPrefix(replaying: pcr10) else { throw ValidationError("the IMA log does not replay") }
            _ = policy.violations(boot: .empty, ima: prefix, agentDigest: nil, index: index)
            imaTimes.append(MonotonicClock.now() - t0)
        }
        func line(_ name: String, _ samples: [Double]) {
            let s = samples.sorted()
            print(String(format: "%@ %.2f %.2f", name, s[s.count / 2] * 1000, s[min(s.count - 1, Int(Double(s.count) * 0.99))] * 1000))
        }
        line("quote", quoteTimes)
        line("verify", verifyTimes)
        line("quote+verify", zip(quoteTimes, verifyTimes).map(+))
        line("ima-log", imaTimes)
        // The software attestation in the same run: the report's signature and its check.
        let signing = try SigningKey(pemFile: key), verifying = try VerifyingKey(certificateFile: cert)
        var softwareTimes: [Double] = []
        for _ in 0..<runs {
            let report = Array("palm-attest-v2".utf8) + Digest32.randomBytes(200)
            let t0 = MonotonicClock.now()
            let signature = try signing.sign(report)
            guard verifying.isValidSignature(signature, for: report) else { throw ValidationError("the bench key does not verify") }
            softwareTimes.append(MonotonicClock.now() - t0)
        }
        line("software", softwareTimes)
        // The TLS key in the TPM: one signature is what it adds to each handshake (and report),
        // against the same signature by a key file; and the certification palm-dest makes at start.
        let tpmKey = try TPMTLSKey(device: device).signingKey()
        var tpmSignTimes: [Double] = [], fileSignTimes: [Double] = []
        for _ in 0..<runs {
            let message = Digest32.randomBytes(200)
            var t0 = MonotonicClock.now()
            _ = try tpmKey.sign(message)
            tpmSignTimes.append(MonotonicClock.now() - t0)
            t0 = MonotonicClock.now()
            _ = try signing.sign(message)
            fileSignTimes.append(MonotonicClock.now() - t0)
        }
        line("tls-sign-tpm", tpmSignTimes)
        line("tls-sign-file", fileSignTimes)
        let t0 = MonotonicClock.now()
        _ = try TPMTLSKey(device: device).certification()
        print(String(format: "tls-key-certify %.2f", (MonotonicClock.now() - t0) * 1000))
        print("evidence-bytes \(bootBytes.count + imaBytes.count)")
    }
}

/// The coordinator's share of continuous attestation: HOSTS enrolled hosts (one software TPM
/// quoting for all of them, each over its own nonce), each answering the coordinator's quote
/// request in a heartbeat; the coordinator's CPU to check one round of quotes — the first (every
/// host's whole IMA log) and a steady one (nothing new measured). The quotes themselves are the
/// hosts' work and are not counted. Prints "round cpu_seconds".
struct AttestationRound: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attestation-round",
                                                    abstract: "Coordinator CPU for one round of quotes from many hosts.")
    @Option(help: "The TPM (a tpm2-tss TCTI string).") var tcti: String
    @Option(help: "Directory with agent-N.pem (the hosts' identities).") var certs: String
    @Option(help: "Coordinator key.") var key: String
    @Option var hosts = 1000
    @Option(help: "IMA entries each host has measured.") var entries = 2000
    @Option(help: "Steady rounds after the first (a profile wants more).") var steadyRounds = 2

    static func threadCPU() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    func run() throws {
        let device = TPMDevice(tcti: tcti, timeout: 30)
        let dir = NSTemporaryDirectory() + "palm-bench-attest-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (boot, ima) = try simulatedPlatform(device, entries: entries)
        let ak = try device.attestationKey()
        let akName = Hex.encode(try TPMPublicArea(decoding: ak).name)

        let store = try CoordinatorStore(.sqlite(path: dir + "/palm.sqlite"))
        var settings = CoordinatorSettings()
        settings.allowlist.platform = PlatformTrust(requirement: .tpm)
        settings.attestation.quoteInterval = 60
        settings.attestation.maxQuoteAge = 600
        let signing = try SigningKey(pemFile: key)
        let service = CoordinatorService(store: store, audit: AuditLog(store: store, key: signing),
                                         policy: try AccessPolicy.parse(AccessPolicy.defaultText), settings: settings, ticketKey: signing)
        nonisolated(unsafe) var now = Date().timeIntervalSince1970
        service.clock = { now }
        let identities = try (0..<hosts).map { try CertificateIdentity.load(pemFile: "\(certs)/agent-\($0).pem") }
        func report(_ i: Int, _ platform: PlatformReport?, holding: String?) -> HostReport {
            var r = HostReport(destinationAddress: "10.1.\(i / 250).\(i % 250):7410", cpus: 32, cpuLoad: 0.3, memoryTotal: 512 << 30,
                               memoryUsed: 0, vms: [])
            r.platform = platform
            r.platformTrustVersion = holding
            return r
        }
        var beat: (Int, PlatformReport?) throws -> AgentOrders = { _, _ in AgentOrders() }
        // Every host enrolled (with the one TPM's key: the enrollment itself is measured elsewhere).
        for i in 0..<hosts {
            let r = service.handle(APIRequest(action: CoordinatorAction.agentHeartbeat.rawValue, report: report(i, nil, holding: nil)),
                                   from: identities[i])
            guard r.ok else { throw ValidationError("heartbeat refused: \(r.error ?? "?")") }
        }
        try store.write { db in
            for id in identities {
                try db.execute(sql: """
                    INSERT INTO tpm_host (host, state, ek_public, ek_certificate, ak_public, ak_name, enrolled, enrolled_by)
                    VALUES (?, 'enrolled', ?, '', ?, ?, 0, 'bench')
                    """, arguments: [id.commonName ?? "", id.fingerprint.hex, Hex.encode(ak), akName])
            }
            let policy = PlatformPolicy().learning(boot: boot, ima: ima.entries[...])
            try db.execute(sql: "INSERT INTO platform_policy (version, policy, created, created_by, note) VALUES (1, ?, 0, 'bench', 'bench')",
                           arguments: [String(decoding: try JSONEncoder().encode(policy), as: UTF8.self)])
        }
        let bootBytes = boot.encoded(), imaBytes = ima.encoded()
        // What a host's palm-source answers to a quote request (PlatformReporter, without the files).
        func answer(_ i: Int, _ asked: PlatformRequest?) throws -> PlatformReport? {
            guard let asked, let nonce = asked.quoteNonce else { return nil }
            let q = try device.quote(pcrs: PlatformPolicy.defaultPCRs,
                                     qualifyingData: QuoteBinding.heartbeat(nonce: Array(nonce), host: identities[i].commonName ?? ""))
            return PlatformReport(quote: try PlatformQuote.answering(nonce: nonce, quote: q.quote, signature: q.signature, pcrValues: q.pcrValues,
                                                                     bootLog: bootBytes, imaLog: imaBytes, offset: asked.imaOffset,
                                                                     maxBytes: asked.imaMaxBytes))
        }
        // Each host keeps the platform trust it was sent and says which version it holds, as palm-source does.
        var holding = [String?](repeating: nil, count: hosts)
        beat = { i, platform in
            let r = service.handle(APIRequest(action: CoordinatorAction.agentHeartbeat.rawValue, report: report(i, platform, holding: holding[i])),
                                   from: identities[i])
            guard r.ok, let orders = r.orders else { throw ValidationError("heartbeat refused: \(r.error ?? "?")") }
            if orders.allowlist.platform != nil { holding[i] = orders.platformTrustVersion }
            return orders
        }
        for round in ["first"] + Array(repeating: "steady", count: steadyRounds) {
            var cpu = 0.0, trusted = 0
            for i in 0..<hosts {
                let reply = try answer(i, try beat(i, nil).platform)
                let t0 = Self.threadCPU()
                _ = try beat(i, reply)
                cpu += Self.threadCPU() - t0
            }
            trusted = try store.read { try $0.value(Int.self, "SELECT COUNT(*) FROM tpm_host WHERE trust = 'trusted'") ?? 0 }
            print(String(format: "%@ %.3f %d", round, cpu, trusted))
            now += 61
        }
        // The same heartbeats when no quote is due (every host attested a moment ago): what a
        // heartbeat costs without attestation, to tell the quotes' share.
        now -= 61
        var plain = 0.0
        for i in 0..<hosts {
            let t0 = Self.threadCPU()
            _ = try beat(i, nil)
            plain += Self.threadCPU() - t0
        }
        print(String(format: "plain %.3f %d", plain, hosts))
    }
}
