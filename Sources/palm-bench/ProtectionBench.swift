import PalmSupport
import ArgumentParser
import Foundation
import Logging
import PalmHypervisor
import PalmMigration
import PalmProtection
import PalmSecurity
import PalmEngineTLS
import PalmCrypto
import PalmTLS
import PalmWire

/// Handshake latency of a protected migration against a running palm-dest: TLS 1.3 with mutual
/// certificates, then HELLO with a fresh ticket (validated and recorded in the replay cache by the
/// destination) and the signed ATTEST, verified here. Prints one line per connection in seconds.
struct HandshakeLatency: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "handshake",
                                                    abstract: "TLS + ticket + attestation latency against palm-dest.")
    @Option var cert: String
    @Option var key: String
    @Option var ca: String
    @Option var coordinatorKey: String
    @Option var destCert: String
    @Option var port: UInt16
    @Option var count = 200

    func run() throws {
        let context = try TLSContext(configuration: TLSConfiguration(certificateChain: cert, privateKey: key, trustRoots: ca))
        let issuer = TicketIssuer(key: try SigningKey(pemFile: coordinatorKey))
        let dest = try CertificateIdentity.load(pemFile: destCert).fingerprint
        for _ in 0..<count {
            let ticket = try issuer.issue(vm: "bench-handshake", memoryBytes: 4096, source: context.localIdentity.fingerprint,
                                          destination: dest, now: UInt64(Date().timeIntervalSince1970), validity: 60)
            let t0 = MonotonicClock.now()
            let ch = try TLSChannel.connect(host: "127.0.0.1", port: port, context: context)
            let nonce = Digest32.random()
            try ch.send(.hello(Hello(ticket: ticket.encoded(), sourceNonce: nonce)))
            guard case let .attest(a) = try FrameReader(stream: ch).readMessage() else { throw ExitCode(1) }
            guard ch.peerKey.isValidSignature(a.signature, for: a.signedBytes), a.sourceNonce == nonce,
                  a.exporter == (try ch.channelBinding()) else { throw ExitCode(1) }
            let t1 = MonotonicClock.now()
            try? ch.send(.abort(AbortNotice(reason: .cancelled, message: "benchmark")))
            ch.close()
            print(String(format: "%.6f", t1 - t0))
        }
    }
}

/// The migration engine with TLS only — no ticket, attestation check, signatures, journal or
/// evidence — moving a sim VM between two sim roots in this process. The baseline the protected
/// palm-source → palm-dest migration is compared with. Prints the total seconds.
struct EngineMigrate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine-migrate",
                                                    abstract: "TLS-only in-process migration of a sim VM (baseline).")
    @Option var cert: String
    @Option var key: String
    @Option var ca: String
    @Option var sourceRoot: String
    @Option var destRoot: String
    @Option var vm: String
    @Option var guestBinary: String

    func run() throws {
        let logger: Logger = {
            var l = Logger(label: "bench")
            l.logLevel = .error
            return l
        }()
        let context = try TLSContext(configuration: TLSConfiguration(certificateChain: cert, privateKey: key, trustRoots: ca))
        let source = try SimHypervisor(root: sourceRoot, memoryLimitBytes: 64 << 30, guestBinary: guestBinary)
        let dest = try SimHypervisor(root: destRoot, memoryLimitBytes: 64 << 30, guestBinary: guestBinary)
        let listener = try TLSListener(host: "127.0.0.1", port: 0, context: context)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var receiverError: Error?
        Thread {
            do {
                guard let ch = try listener.accept(timeout: 60) else { return }
                let protections = Unprotected.receiver { b in
                    Attestation(sourceNonce: b.nonce, exporter: b.exporter, agentDigest: .zero, configDigest: .zero,
                                hypervisor: "sim", hypervisorVersion: "", timestampMillis: 0, signature: [])
                }
                _ = try MigrationReceiver(channel: ch, hypervisor: dest, protections: protections, logger: logger).run()
            } catch { receiverError = error }
            done.signal()
        }.start()
        let domain = try source.openSource(vm: vm)
        let ch = try TLSChannel.connect(host: "127.0.0.1", port: listener.port, context: context)
        let report = try MigrationSender(channel: ch, domain: domain, protections: Unprotected.sender, logger: logger).run()
        done.wait()
        if let receiverError { throw receiverError }
        print(String(format: "%.6f %.6f", report.totalSeconds, report.downtimeSeconds))
    }
}
