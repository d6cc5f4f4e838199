import Foundation
import Logging
import PalmHypervisor
import PalmMigration
import PalmSecurity
import PalmTLS
import PalmWire

/// palm-dest's service: accepts PalmTLS connections and runs one ``MigrationReceiver`` per
/// connection on its own thread, at most `maxConcurrent` at a time. A connection that fails its
/// handshake is logged with the named reason and costs nothing else.
public final class DestinationServer: @unchecked Sendable {
    public let configuration: DestinationConfiguration
    public let hypervisor: Hypervisor
    let context: TLSContext
    let listener: TLSListener
    let signingKey: SigningKey
    let measurement: Measurement
    let validator: TicketValidator
    let replayCache: ReplayCache
    let ledger: DestinationLedger
    let logger: Logger
    private let slots: DispatchSemaphore
    private let group = DispatchGroup()

    public var port: UInt16 { listener.port }

    public init(configuration: DestinationConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        context = try TLSContext(configuration: configuration.tls)
        signingKey = try SigningKey(pemFile: configuration.tls.privateKey)
        hypervisor = try configuration.hypervisor.make()
        ledger = try DestinationLedger(directory: configuration.stateDirectory + "/migrations")
        DestinationServer.recover(hypervisor: hypervisor, ledger: ledger, logger: logger)
        measurement = try Measurement.measure(configPath: configuration.file, hypervisor: hypervisor)
        validator = TicketValidator(coordinatorKey: try VerifyingKey(certificateFile: configuration.coordinatorCertificate),
                                    clockSkew: configuration.clockSkew)
        replayCache = try ReplayCache(path: configuration.stateDirectory + "/replay-cache",
                                      now: UInt64(Date().timeIntervalSince1970))
        listener = try TLSListener(host: configuration.listenAddress, port: configuration.listenPort, context: context)
        slots = DispatchSemaphore(value: configuration.maxConcurrent)
    }

    /// Accepts connections until `close()`.
    public func run() {
        logger.info("palm-dest listening on \(configuration.listenAddress):\(port) as \(context.localIdentity)")
        while true {
            slots.wait()
            let socket: Int32
            do {
                guard let s = try listener.acceptSocket() else { slots.signal(); continue }
                socket = s
            } catch {
                slots.signal()
                if case TLSError.closed = error { break }
                logger.error("accept failed: \(error)")
                continue
            }
            group.enter()
            Thread { [self] in
                defer { slots.signal(); group.leave() }
                handle(socket)
            }.start()
        }
        group.wait()
    }

    private func handle(_ socket: Int32) {
        let channel: TLSChannel
        do {
            channel = try TLSChannel.accept(socket: socket, context: context)
        } catch {
            logger.warning("refused a connection: \(error)")
            return
        }
        var log = logger
        log[metadataKey: "PEER"] = "\(channel.peer.commonName ?? channel.peer.subject)"
        let security = DestinationSecurity(validator: validator, replayCache: replayCache, measurement: measurement,
                                           key: signingKey, local: context.localIdentity, peerKey: channel.peerKey,
                                           peerPEM: channel.peer.pem, ledger: ledger,
                                           evidenceDirectory: configuration.stateDirectory + "/evidence")
        let receiver = MigrationReceiver(channel: channel, hypervisor: hypervisor, security: security.hooks, logger: log)
        do {
            guard let outcome = try receiver.run() else { return }  // a RESOLVE exchange
            log.notice("received \(outcome.vm): \(outcome.rounds) rounds, \(outcome.pagesReceived) pages, image sha256:\(outcome.imageDigest.hex)")
        } catch {
            log.warning("incoming migration failed: \(error)")
        }
    }

    public func close() { listener.close() }

    /// Start-up recovery after a crash: an incoming VM whose migration the ledger records as
    /// committed is resumed (the source has or will destroy its copy); any other is discarded
    /// and its migration recorded as aborted (the source resumes its copy).
    static func recover(hypervisor: Hypervisor, ledger: DestinationLedger, logger: Logger) {
        let records = ledger.journal.all()
        for vm in hypervisor.incomingVMs() {
            let entries = records.filter { $0.record["vm"] == vm }
            if let committed = entries.first(where: { $0.record["state"] == "committed" }) {
                do {
                    try hypervisor.completeIncoming(vm: vm)
                    logger.notice("recovery: resumed \(vm), migration \(committed.id) was committed before the restart")
                } catch {
                    logger.critical("recovery: cannot resume committed \(vm): \(error)")
                }
            } else {
                for e in entries { _ = try? ledger.resolve(id: e.id) }
                hypervisor.discardIncoming(vm: vm)
                logger.warning("recovery: discarded the partial image of \(vm) left by an interrupted migration")
            }
        }
        for e in records where e.record["state"] == "incoming" { _ = try? ledger.resolve(id: e.id) }
    }
}
