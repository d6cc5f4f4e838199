import Foundation
import PalmTestSupport
import PalmTLS
import Testing

/// `/metrics` on all three daemons, scraped with curl before, during and after a migration the
/// coordinator orders in the network-namespace cluster: the counters and histograms move by the
/// right amounts, a refused connection counts under its reason, the exposition parses strictly.
@Suite("Prometheus metrics (network namespaces)", .serialized)
struct MetricsTests {
    @Test("a coordinator-ordered migration moves every agent and coordinator metric by the right amount; a wrong-CA peer counts as a TLS refusal")
    func migrationMovesMetrics() throws {
        let cluster = try NetnsCluster(hosts: 2, memoryLimit: "2G", scheduler: "auto_balance = false", metrics: true)
        defer { cluster.shutdown() }
        let (h1, h2) = (cluster.hosts[0], cluster.hosts[1])
        try cluster.createVM("big", on: h1, memory: "512M", rate: 20_000)
        try cluster.start()
        #expect(try cluster.await(30) { try cluster.placement()["big"] == h1.name })

        // Before: the inventory is in the coordinator's gauges (once both hosts reported); the
        // agents have moved nothing.
        #expect(try cluster.await(30) { try cluster.scrape(nil).value("palm_coordinator_hosts", ["state": "up"]) == 2 })
        let before = try cluster.scrape(nil)
        #expect(before.value("palm_coordinator_hosts", ["state": "down"]) == 0)
        #expect(before.value("palm_coordinator_vms") == 1)
        #expect(before.value("palm_coordinator_leader") == 1)
        #expect((before.value("palm_coordinator_heartbeats_total") ?? 0) > 0)
        let auditBefore = before.value("palm_coordinator_audit_entries_total") ?? 0
        let sourceBefore = try cluster.scrape(h1, "source")
        #expect((sourceBefore.value("palm_migrations_started_total", ["role": "source"]) ?? 0) == 0)
        #expect((sourceBefore.value("process_resident_memory_bytes") ?? 0) > 1_048_576)
        #expect((sourceBefore.value("process_open_fds") ?? 0) > 0)

        // During: in flight on both agents, running at the coordinator.
        let id = try cluster.requestMigration("big", to: h2)
        var during: (source: Double?, coordinator: Double?) = (nil, nil)
        _ = try cluster.await(60) {
            let s = try cluster.scrape(h1, "source"), c = try cluster.scrape(nil)
            during = (s.value("palm_migrations_in_flight", ["role": "source"]), c.value("palm_coordinator_migrations", ["state": "running"]))
            return during.source == 1 && during.coordinator == 1
        }
        #expect(during.source == 1 && during.coordinator == 1, "in flight \(during)")
        #expect(try cluster.awaitCommitted(id), "\(cluster.agentLog(h1, "source"))")

        // After: exactly one migration, measured on the source, received on the destination.
        let source = try cluster.scrape(h1, "source")
        #expect(source.value("palm_migrations_started_total", ["role": "source"]) == 1)
        #expect(source.value("palm_migrations_committed_total", ["role": "source"]) == 1)
        #expect(source.value("palm_migrations_in_flight", ["role": "source"]) == 0)
        #expect(source.value("palm_migration_downtime_seconds_count", ["role": "source"]) == 1)
        #expect(source.value("palm_migration_duration_seconds_count", ["role": "source"]) == 1)
        #expect(source.value("palm_migration_rounds_count", ["role": "source"]) == 1)
        #expect((source.value("palm_migration_rounds_sum", ["role": "source"]) ?? 0) >= 2, "pre-copy rounds and the final one")
        let dataPages = source.value("palm_migration_pages_total", ["role": "source", "kind": "data"]) ?? 0
        let zeroPages = source.value("palm_migration_pages_total", ["role": "source", "kind": "zero"]) ?? 0
        #expect(dataPages + zeroPages >= Double(512 << 20) / 4096, "every page at least once: \(dataPages) + \(zeroPages)")
        #expect((source.value("palm_migration_bytes_total", ["role": "source"]) ?? 0) > dataPages * 4096 * 0.9)
        #expect(source.value("palm_migration_compressed_batches_total", ["role": "source"]) == 0, "random guest memory never shrinks: auto sends every batch raw")
        let dest = try cluster.scrape(h2, "dest")
        #expect(dest.value("palm_migrations_started_total", ["role": "destination"]) == 1)
        #expect(dest.value("palm_migrations_committed_total", ["role": "destination"]) == 1)
        #expect(dest.value("palm_migrations_in_flight", ["role": "destination"]) == 0)
        let after = try cluster.scrape(nil)
        #expect(after.value("palm_coordinator_migrations", ["state": "running"]) == 0)
        #expect((after.value("palm_coordinator_audit_entries_total") ?? 0) > auditBefore, "the request, the order and the outcome are audited")
        #expect((after.value("palm_coordinator_heartbeats_total") ?? 0) > (before.value("palm_coordinator_heartbeats_total") ?? 0))
        #expect((after.value("palm_coordinator_scheduling_cycle_seconds_count") ?? 0) > 0)

        // A peer whose certificate comes from another CA is refused at the TLS handshake and counted.
        let tlsBefore = dest.value("palm_refusals_total", ["role": "destination", "reason": "tls"]) ?? 0
        #expect(throws: TLSError.self) {
            let channel = try TLSChannel.connect(host: h2.address, port: 7410, serverName: nil, context: try cluster.pki.context("intruder", other: true))
            var byte = [UInt8](repeating: 0, count: 1)
            _ = try byte.withUnsafeMutableBytes { try channel.read(into: $0) }
        }
        #expect(try cluster.await(10) {
            try cluster.scrape(h2, "dest").value("palm_refusals_total", ["role": "destination", "reason": "tls"]) == tlsBefore + 1
        })
        // The coordinator refuses and counts it the same way (both servers share one admission path).
        let coordinatorBefore = after.value("palm_refusals_total", ["role": "coordinator", "reason": "tls"]) ?? 0
        let endpoint = cluster.coordinatorEndpoints[0].split(separator: ":")
        #expect(throws: TLSError.self) {
            let channel = try TLSChannel.connect(host: String(endpoint[0]), port: UInt16(endpoint[1]) ?? 0, serverName: nil,
                                                 context: try cluster.pki.context("intruder", other: true))
            var byte = [UInt8](repeating: 0, count: 1)
            _ = try byte.withUnsafeMutableBytes { try channel.read(into: $0) }
        }
        #expect(try cluster.await(10) {
            try cluster.scrape(nil).value("palm_refusals_total", ["role": "coordinator", "reason": "tls"]) == coordinatorBefore + 1
        })
    }

    @Test("without [metrics] no daemon listens for scrapes: each agent's namespace has only its protocol ports open")
    func absentWhenNotConfigured() throws {
        let cluster = try NetnsCluster(hosts: 1, memoryLimit: "1G", scheduler: "auto_balance = false")
        defer { cluster.shutdown() }
        try cluster.start()
        let h = cluster.hosts[0]
        #expect(try cluster.await(10) { try cluster.placement().isEmpty && cluster.listeningPorts(h) == [7410] },
                "\((try? cluster.listeningPorts(h)) ?? [])")
        let r = try ProcessRunner.run("/usr/bin/curl", ["-s", "--max-time", "2", "http://\(h.address):9465/metrics"])
        #expect(r.status != 0)
    }
}
