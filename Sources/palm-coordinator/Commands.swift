import ArgumentParser
import Foundation
import PalmControl
import PalmWire

struct Hosts: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The hosts: list them, enroll their TPMs.",
                                                    subcommands: [List.self, Enroll.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the hosts: state, load, VMs, attestation.")
        @OptionGroup var client: ClientOptions
        func run() throws {
            client.show(try client.call(APIRequest(action: CoordinatorAction.hosts.rawValue)),
                        columns: ["host", "state", "address", "cpu", "memory", "vms", "attestation", "fingerprint"])
        }
    }

    struct Enroll: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enroll a host's TPM attestation key, or start its re-enrollment.",
            discussion: """
                A host whose TPM proved its attestation key (EK certificate from a trusted manufacturer CA, credential \
                activated) is enrolled. A host refused at enrollment, or whose key changed, is challenged again at its next \
                heartbeat and enrolled once its TPM proves the key: a host is never re-enrolled silently.
                """)
        @Argument(help: "The host.") var host: String
        @OptionGroup var client: ClientOptions
        func run() throws {
            client.show(try client.call(APIRequest(action: CoordinatorAction.hostsEnroll.rawValue, arguments: ["host": host])),
                        columns: ["host", "state", "key", "detail"])
        }
    }
}

struct Attestation: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Hardware-rooted attestation of the hosts.", subcommands: [Policy.self])

    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The platform policy: the boot components and files a host may have run (versioned, audited).",
            subcommands: [Show.self, Learn.self, Diff.self])

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show the policy in force.",
                discussion: "With --json, the policy itself: what a standalone source's attestation.platform_policy file holds.")
            @OptionGroup var client: ClientOptions
            func run() throws {
                let json = client.json
                let rows = try client.call(APIRequest(action: CoordinatorAction.policyShow.rawValue, arguments: json ? ["format": "json"] : [:]))
                if json, let policy = rows.first?["policy"] {
                    print(policy)
                    return
                }
                client.show(rows, columns: ["kind", "what", "digest", "detail"])
            }
        }

        struct Learn: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Allow everything a host declared good has run (its verified boot and IMA logs): a new policy version.")
            @Option(help: "The host whose logs are learned.") var host: String
            @OptionGroup var client: ClientOptions
            func run() throws {
                client.show(try client.call(APIRequest(action: CoordinatorAction.policyLearn.rawValue, arguments: ["host": host])),
                            columns: ["version", "learned_from", "added", "boot", "files"])
            }
        }

        struct Diff: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "What a host has run that the policy in force does not allow.")
            @Argument(help: "The host.") var host: String
            @OptionGroup var client: ClientOptions
            func run() throws {
                client.show(try client.call(APIRequest(action: CoordinatorAction.policyDiff.rawValue, arguments: ["host": host])),
                            columns: ["kind", "what", "digest"])
            }
        }
    }
}

struct VMs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vms", abstract: "List the VMs and where they run.")
    @OptionGroup var client: ClientOptions
    func run() throws {
        client.show(try client.call(APIRequest(action: CoordinatorAction.vms.rawValue)),
                    columns: ["vm", "host", "memory", "dirty_pages_s", "cpu"])
    }
}

let migrationColumns = ["id", "vm", "from", "to", "state", "kind", "downtime_ms", "total_s", "detail"]

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live-migrate a VM to a host.",
        discussion: "Prints the migration id. With --wait, shows a live progress bar and exits 0 only if the migration committed.")
    @Argument(help: "The VM.") var vm: String
    @Option(help: "The destination host.") var to: String
    @Option(help: "pre-copy (default) or stop-and-copy.") var mode = "pre-copy"
    @Option(help: "Downtime target in milliseconds (default: the source agent's configuration).") var downtimeMs: Double?
    @Flag(help: "Wait for the migration to end, showing its progress.") var wait = false
    @OptionGroup var client: ClientOptions

    func validate() throws {
        guard MigrationMode(name: mode) != nil else { throw ValidationError("--mode must be pre-copy or stop-and-copy") }
        if let d = downtimeMs, !(d > 0 && d <= 60_000) { throw ValidationError("--downtime-ms must be in (0, 60000]") }
    }

    func run() throws {
        let c = try client.connect()
        var args = ["vm": vm, "to": to, "mode": mode]
        if let d = downtimeMs { args["downtime_ms"] = "\(d)" }
        let rows = try client.call(APIRequest(action: CoordinatorAction.migrate.rawValue, arguments: args), on: c)
        guard let id = rows.first?["id"] else { fail("the coordinator answered without a migration id"); throw ExitCode(1) }
        if !wait || client.json { client.show(rows, columns: migrationColumns) }
        guard wait else { return }
        if !client.json { FileHandle.standardError.write(Data("migration \(id): \(vm) → \(to)\n".utf8)) }
        let final = try ProgressWatcher(client: client, connection: c, quiet: client.json).follow(id)
        if client.json { client.show([final], columns: migrationColumns) } else { print(ProgressWatcher.summary(final)) }
        guard final["state"] == "committed" else { throw ExitCode(1) }
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel a migration that has not committed (the VM stays on its source).")
    @Argument(help: "The migration id (or a unique prefix).") var id: String
    @OptionGroup var client: ClientOptions
    func run() throws {
        client.show(try client.call(APIRequest(action: CoordinatorAction.cancel.rawValue, arguments: ["id": id])), columns: migrationColumns)
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one migration.")
    @Argument(help: "The migration id (or a unique prefix).") var id: String
    @OptionGroup var client: ClientOptions
    func run() throws {
        let rows = try client.call(APIRequest(action: CoordinatorAction.status.rawValue, arguments: ["id": id]))
        if client.json { client.show(rows, columns: []); return }
        for row in rows { for key in row.keys.sorted() { print("\(key.padding(toLength: 16, withPad: " ", startingAt: 0)) \(row[key]!)") } }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Recent migrations, newest first.")
    @Option(help: "How many.") var limit = 50
    @Option(help: "Only this VM's.") var vm: String?
    @OptionGroup var client: ClientOptions
    func validate() throws { guard limit > 0 && limit <= 10_000 else { throw ValidationError("--limit must be 1…10000") } }
    func run() throws {
        var args = ["limit": "\(limit)"]
        if let vm { args["vm"] = vm }
        client.show(try client.call(APIRequest(action: CoordinatorAction.history.rawValue, arguments: args)),
                    columns: ["id", "created", "vm", "from", "to", "kind", "state", "downtime_ms", "total_s", "requested_by"])
    }
}

let planColumns = ["kind", "vm", "from", "to", "cost_s", "reason"]

struct Evacuate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a host into maintenance and move every VM off it, as the migration limits allow.")
    @Argument(help: "The host.") var host: String
    @OptionGroup var client: ClientOptions
    func run() throws {
        client.show(try client.call(APIRequest(action: CoordinatorAction.evacuate.rawValue, arguments: ["host": host])), columns: planColumns)
    }
}

struct Maintenance: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Put a host into or out of maintenance (it receives no VMs while on).")
    @Argument(help: "The host.") var host: String
    @Argument(help: "on or off.") var mode: String
    @OptionGroup var client: ClientOptions

    func validate() throws {
        guard mode == "on" || mode == "off" else { throw ValidationError("MODE must be on or off") }
    }

    func run() throws {
        client.show(try client.call(APIRequest(action: CoordinatorAction.maintenance.rawValue, arguments: ["host": host, "mode": mode])),
                    columns: ["host", "maintenance"])
    }
}

struct Rebalance: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Balance load now; with --dry-run, only show the plan and why.")
    @Flag(help: "Show the plan without starting anything.") var dryRun = false
    @OptionGroup var client: ClientOptions
    func run() throws {
        client.show(try client.call(APIRequest(action: CoordinatorAction.rebalance.rawValue, arguments: ["dry_run": dryRun ? "yes" : "no"])),
                    columns: planColumns)
    }
}

/// Follows a migration's status until it ends, drawing a progress bar (round, pages left, rate, ETA).
struct ProgressWatcher {
    let client: ClientOptions
    let connection: CoordinatorFailover
    let quiet: Bool

    func follow(_ id: String) throws -> [String: String] {
        let tty = isatty(2) == 1
        var lastLine = ""
        var firstPages: Double?
        while true {
            let row = try client.call(APIRequest(action: CoordinatorAction.status.rawValue, arguments: ["id": id]), on: connection).first ?? [:]
            let state = row["state"] ?? "?"
            if ["committed", "aborted", "cancelled"].contains(state) {
                if tty && !quiet { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
                return row
            }
            let line = ProgressWatcher.line(row, firstPages: &firstPages)
            if !quiet && line != lastLine {
                FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + line : line + "\n").utf8))
                lastLine = line
            }
            Thread.sleep(forTimeInterval: 0.25)  // polling interval of a display, not synchronisation
        }
    }

    static func line(_ row: [String: String], firstPages: inout Double?) -> String {
        let state = row["state"] ?? "?"
        guard state == "running", let phase = row["phase"] else { return "\(state)…" }
        let left = Double(row["pages_left"] ?? "") ?? 0
        let rate = Double(row["rate_mib_s"] ?? "") ?? 0
        if (row["round"] ?? "0") == "0" && firstPages == nil && left > 0 { firstPages = left }
        let total = max(firstPages ?? left, 1)
        let done = max(0, min(1, 1 - left / total))
        let width = 24
        let bar = String(repeating: "#", count: Int(done * Double(width))).padding(toLength: width, withPad: ".", startingAt: 0)
        let eta = rate > 0 ? String(format: "ETA %.0f s", left * 4096 / (rate * 1_048_576)) : "ETA -"
        return "[\(bar)] \(phase) round \(row["round"] ?? "0"): \(Int(left)) pages left, \(row["rate_mib_s"] ?? "0") MiB/s, \(eta)"
    }

    static func summary(_ row: [String: String]) -> String {
        var s = "migration \(row["id"] ?? "?") of \(row["vm"] ?? "?") \(row["from"] ?? "?") → \(row["to"] ?? "?"): \(row["state"] ?? "?")"
        if let d = row["downtime_ms"] { s += ", downtime \(d) ms" }
        if let t = row["total_s"] { s += ", total \(t) s" }
        if let detail = row["detail"] { s += "\n  \(detail)" }
        return s
    }
}
