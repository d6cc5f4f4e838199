import Foundation
import Logging
import PalmHypervisor
import PalmMigration
import PalmTLS
import PalmWire

/// palm-source's migrate operation: open the VM, connect to the destination over PalmTLS, run
/// the engine, return its report.
public struct SourceAgent {
    public let configuration: SourceConfiguration
    public let logger: Logger

    public init(configuration: SourceConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public struct Request: Sendable {
        public var vm: String
        public var host: String
        public var port: UInt16
        /// The name the destination's certificate must carry (default: host).
        public var serverName: String?
        public var mode: MigrationMode
        public var downtimeTarget: Double?
        public init(vm: String, host: String, port: UInt16, serverName: String? = nil, mode: MigrationMode = .preCopy,
                    downtimeTarget: Double? = nil) {
            self.vm = vm
            self.host = host
            self.port = port
            self.serverName = serverName
            self.mode = mode
            self.downtimeTarget = downtimeTarget
        }
    }

    public func migrate(_ request: Request, progress: @escaping (MigrationProgress) -> Void = { _ in }) throws -> MigrationReport {
        let hypervisor = try configuration.hypervisor.make()
        let domain = try hypervisor.openSource(vm: request.vm)
        let context = try TLSContext(configuration: configuration.tls)
        let channel = try TLSChannel.connect(host: request.host, port: request.port, serverName: request.serverName, context: context)
        var options = MigrationSender.Options()
        options.mode = request.mode
        options.policy = configuration.policy
        if let t = request.downtimeTarget { options.policy.downtimeTarget = t }
        options.batchPages = configuration.batchPages
        options.hypervisorName = hypervisor.name
        var log = logger
        log[metadataKey: "VM"] = "\(request.vm)"
        log[metadataKey: "PEER"] = "\(channel.peer.commonName ?? request.host)"
        let sender = MigrationSender(channel: channel, domain: domain, options: options, logger: log, progress: progress)
        return try sender.run()
    }
}
