import ArgumentParser
import Foundation
import PalmCoordinator
import PalmMetricsEndpoint
import PalmSecurity
import PalmSystemd
import PalmCrypto
import PalmTLS
import PalmWire
import PalmSupport

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the coordinator daemon.",
        discussion: "SIGHUP re-reads the access policy and the TLS certificates/CRL; SIGTERM stops after the request in hand.")
    @Option(help: "Configuration file.") var config = CoordinatorConfiguration.defaultPath

    func run() throws {
        let logger = DaemonLogging.bootstrap(identifier: "palm-coordinator")
        do {
            let c = try CoordinatorConfiguration.load(path: config)
            let context = try TLSContext(configuration: c.tls)
            guard context.localIdentity.role == .coordinator else {
                fail("error: \(c.tls.certificateChain) does not carry the coordinator role (certs/palm-ca host NAME --role coordinator)")
                throw ExitCode(1)
            }
            let store = try CoordinatorStore(c.store)
            let key = try SigningKey(pemFile: c.tls.privateKey)
            let audit = AuditLog(store: store, key: key, headFile: c.auditHeadFile)
            audit.onHead = { head in
                logger.info("audit head \(head.seq) \(head.hash)",
                            metadata: ["event": "\(PalmEvent.auditHead.rawValue)", "AUDIT_SEQ": "\(head.seq)", "AUDIT_HASH": "\(head.hash)",
                                       "AUDIT_SIGNATURE": "\(head.signature)"])
            }
            let service = CoordinatorService(store: store, audit: audit,
                                             policy: try AccessPolicy.load(path: c.policyFile),
                                             settings: CoordinatorSettings(c), ticketKey: key, requestLimits: c.requestLimits)
            // Before anything records (the lease, the server): swift-metrics is bootstrapped here.
            let metrics = try c.metricsListen.map { listen in
                try MetricsEndpoint.start(listen: listen, logger: logger) {
                    if let now = service.metricsInventory() { service.metrics.record(now) }
                }
            }
            defer { metrics?.stop() }
            let trust = try CoordinatorTrust(certificateFiles: c.coordinatorCertificates)
            guard trust.trusts(context.localIdentity.fingerprint) else {
                fail("error: \(c.file): state.coordinator_certificates does not list this coordinator's own certificate (\(c.tls.certificateChain))")
                throw ExitCode(1)
            }
            service.auditTrust = trust
            // PostgreSQL: coordinators share the database, one leads by lease. SQLite: the one
            // coordinator takes the same lease (and a second one started on the file is fenced).
            // The holder names this process's coordinator: its certificate's CN and where it listens
            // (coordinators of one cluster may share one certificate).
            let name = (context.localIdentity.commonName ?? context.localIdentity.fingerprint.hex) + "@" + c.advertiseAddress
                + " on " + ProcessInfo.processInfo.hostName
            let lease = LeaderLease(store: store, holder: name, address: "\(c.advertiseAddress)", duration: c.leaseDuration)
            service.lease = lease
            try lease.renew(takeOver: store.backend.dialect == .sqlite)
            DescriptorLimit.raise(toServe: c.limits.maxConnections + c.limits.admission.maxPending + c.limits.admission.maxHandshakes,
                                  logger: logger)
            let server = try CoordinatorServer(host: c.listenAddress, port: c.listenPort, context: context, service: service,
                                               schedulerInterval: c.schedulerInterval, limits: c.limits, logger: logger)
            let runtime = DaemonRuntime(logger: logger)
            for loop in ["accept", "scheduler"] { runtime.liveness.register(loop) }
            server.beatInterval = runtime.liveness.maxWait(fallback: 5)
            server.onBeat = { runtime.liveness.beat($0) }
            server.onStatus = { runtime.notifier.status($0) }
            server.onLeadership = { state in
                switch state {
                case let .leader(epoch):
                    logger.notice("leading the cluster (epoch \(epoch), \(store.backend.name))", metadata: ["event": "\(PalmEvent.leaderElected.rawValue)", "EPOCH": "\(epoch)"])
                case let .follower(leader, address, epoch):
                    logger.notice("following \(leader ?? "nobody yet")\(address.map { " at \($0)" } ?? "") (epoch \(epoch)): answering reads only",
                                  metadata: ["event": "\(PalmEvent.leaderFollowing.rawValue)", "EPOCH": "\(epoch)"])
                }
            }
            print("listening on \(c.listenAddress):\(server.listener.port)")
            fflush(nil)  // stdout: the "listening" line a supervisor or test waits for
            runtime.run(status: "listening on \(c.listenAddress):\(server.listener.port); " + service.statusLine(),
                        serve: server.run, stop: { server.close() }) {
                // The policy and TLS material; everything else needs a restart.
                let next = try CoordinatorConfiguration.load(path: config)
                let policy = try AccessPolicy.load(path: next.policyFile)
                server.context = try TLSContext(configuration: next.tls)
                service.policy = policy
                return "reloaded; " + service.statusLine()
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            fail("error: \(error)")
            throw ExitCode(1)
        }
    }
}
