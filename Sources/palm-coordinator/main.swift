import ArgumentParser
import Foundation
import PalmControl
import PalmWire

/// palm-coordinator: the cluster's scheduler and the operators' CLI.
struct PalmCoordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-coordinator",
        abstract: "palm's coordinator: decides every migration, issues tickets, enforces access control.",
        discussion: """
        `palm-coordinator serve` runs as the palm-coordinator systemd unit on one control host; the other
        subcommands are the operators' CLI and authenticate with the operator's client certificate
        (--server/--cert/--key/--ca, or PALM_SERVER, PALM_CERT, PALM_KEY, PALM_CA).

        Exit status: 0 done; 1 refused or failed (the reason is printed); 2 the coordinator could not
        be reached or authenticated; 64 bad arguments.

        Files:
          /etc/palm/coordinator.toml     configuration (listen, tickets, scheduler, allowlist)
          /etc/palm/policy.toml          access policy: roles → actions
          /etc/palm/tls/                 coordinator certificate, key, cluster CA, CRL
          /var/lib/palm/coordinator/     state: SQLite database with the audit log
        """,
        version: "palm-coordinator \(PalmVersion.string) (wire protocol v\(WireProtocol.version))",
        subcommands: [Serve.self, Hosts.self, VMs.self, Migrate.self, Cancel.self, Status.self, History.self,
                      Evacuate.self, Maintenance.self, Rebalance.self, Attestation.self, Ticket.self, Audit.self])
}

PalmCoordinator.main()
