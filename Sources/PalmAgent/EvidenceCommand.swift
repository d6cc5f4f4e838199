import ArgumentParser

/// An agent whose configuration file names the coordinators that may sign its tickets — what
/// `evidence verify` checks a ticket's signature against when no `--coordinator-cert` is given.
public protocol EvidenceVerifyingAgent {
    /// The executable's name, for error messages.
    static var program: String { get }
    /// The configuration file `--config` defaults to.
    static var defaultConfigPath: String { get }
    /// The coordinator certificates (PEM files) the configuration at `path` lists; empty if none.
    static func coordinatorCertificates(configPath path: String) throws -> [String]
}

extension SourceConfiguration: EvidenceVerifyingAgent {
    public static var program: String { "palm-source" }
    public static var defaultConfigPath: String { defaultPath }
    public static func coordinatorCertificates(configPath path: String) throws -> [String] {
        try load(path: path).coordinator?.certificates ?? []
    }
}

extension DestinationConfiguration: EvidenceVerifyingAgent {
    public static var program: String { "palm-dest" }
    public static var defaultConfigPath: String { defaultPath }
    public static func coordinatorCertificates(configPath path: String) throws -> [String] {
        try load(path: path).coordinatorCertificates
    }
}

/// `evidence verify FILE`, the same for both agents: every signature of a stored evidence file,
/// the ticket checked against the coordinators given with `--coordinator-cert` or, without one,
/// those the agent's configuration lists. Exit 0 when every check passes, 1 when one fails, 2
/// when the file, a certificate or the configuration cannot be read.
public struct EvidenceCommand<Agent: EvidenceVerifyingAgent>: ParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "evidence", abstract: "Migration evidence.", subcommands: [Verify.self])
    }

    public init() {}

    public struct Verify: ParsableCommand {
        public static var configuration: CommandConfiguration {
            CommandConfiguration(abstract: "Check every signature of an evidence file.")
        }
        @Argument(help: "The evidence file (STATE_DIR/evidence/ID.evidence.json).") var file: String
        @Option(help: "A coordinator's certificate (PEM), repeated for each coordinator that may have signed the ticket (default: the coordinators --config lists).")
        var coordinatorCert: [String] = []
        @Option(help: "Configuration file.") var config: String = Agent.defaultConfigPath

        public init() {}

        public func run() throws {
            try CLI.runEvidenceVerify(program: Agent.program, path: file) {
                let listed = try coordinatorCert.isEmpty ? Agent.coordinatorCertificates(configPath: config) : coordinatorCert
                guard !listed.isEmpty else {
                    throw ValidationError("no coordinator certificate: give --coordinator-cert, or list the coordinators in \(config)")
                }
                return listed
            }
        }
    }
}
