import ArgumentParser
import PalmWire

/// palm-coordinator: the cluster's scheduler and the operators' CLI.
struct PalmCoordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-coordinator",
        abstract: "palm's coordinator: decides every migration, issues tickets, enforces access control.",
        discussion: """
        `palm-coordinator serve` runs as the palm-coordinator systemd unit on one control host; the other
        subcommands are the operators' CLI and authenticate with the operator's client certificate.

        Files:
          /etc/palm/coordinator.toml     configuration (policy, limits)
          /etc/palm/tls/                 coordinator certificate, key, cluster CA, CRL
          /var/lib/palm/coordinator/     state: SQLite database, audit log
        """,
        version: "palm-coordinator \(PalmVersion.string) (wire protocol v\(WireProtocol.version))")
}

PalmCoordinator.main()
