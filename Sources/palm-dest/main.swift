import ArgumentParser
import PalmWire

/// palm-dest: the inbound side of a migration on every host.
struct PalmDest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-dest",
        abstract: "palm's inbound migration agent: accepts ticketed migrations over mutual TLS 1.3 and resumes the VM.",
        discussion: """
        Runs on every host as the palm-dest systemd unit. It accepts a migration only with a valid ticket,
        attests itself to the source, rebuilds the VM, verifies the signed manifest and resumes it.

        Files:
          /etc/palm/dest.toml            configuration
          /etc/palm/tls/                 host certificate, key, cluster CA, CRL (made with certs/palm-ca)
          /var/lib/palm/dest/            state: replay cache, migration evidence
        """,
        version: "palm-dest \(PalmVersion.string) (wire protocol v\(WireProtocol.version))")
}

PalmDest.main()
