import ArgumentParser
import PalmWire

/// palm-source: the outbound side of a migration on every host.
struct PalmSource: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-source",
        abstract: "palm's outbound migration agent: streams a running VM to a palm-dest over mutual TLS 1.3.",
        discussion: """
        Runs on every host as the palm-source systemd unit. It talks to the local hypervisor, runs the
        multi-pass pre-copy engine and streams pages to the destination agent named by a migration ticket.

        Files:
          /etc/palm/source.toml          configuration
          /etc/palm/tls/                 host certificate, key, cluster CA, CRL (made with certs/palm-ca)
          /var/lib/palm/source/          state: migration evidence
        """,
        version: "palm-source \(PalmVersion.string) (wire protocol v\(WireProtocol.version))")
}

PalmSource.main()
