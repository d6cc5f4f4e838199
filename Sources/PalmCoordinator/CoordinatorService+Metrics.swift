import PalmMetrics

extension CoordinatorService {
    /// The cluster as the database holds it, for the inventory gauges at each scrape: hosts up
    /// (reported within the host timeout), down, in maintenance; VMs; migrations by state; whether
    /// this coordinator leads. nil when the database cannot be read (the gauges keep their values).
    public func metricsInventory() -> CoordinatorMetrics.Inventory? {
        let now = clock()
        return try? store.read { db in
            // One pass over each table (this runs at every scrape).
            let hosts = try db.row("""
                SELECT COUNT(*) AS total,
                       COALESCE(SUM(CASE WHEN maintenance = 1 THEN 1 ELSE 0 END), 0) AS maintenance,
                       COALESCE(SUM(CASE WHEN maintenance = 0 AND last_heartbeat >= ? THEN 1 ELSE 0 END), 0) AS up
                FROM host
                """, arguments: [now - settings.hostTimeout])
            let (all, maintenance, up): (Int, Int, Int) = (try hosts?.get("total") ?? 0, try hosts?.get("maintenance") ?? 0, try hosts?.get("up") ?? 0)
            var migrations: [String: Int] = [:]
            for row in try db.rows("SELECT state, COUNT(*) AS n FROM migration GROUP BY state") {
                migrations[try row.get("state")] = try row.get("n")
            }
            var attestation: [String: Int] = [:]
            for row in try db.rows("SELECT state, trust, attested FROM tpm_host") {
                let trust = try hostTrust(state: try row.get("state"), trust: try row.get("trust"), attested: row["attested"], now: now)
                attestation[trust.verdict, default: 0] += 1
            }
            return CoordinatorMetrics.Inventory(hosts: ["up": up, "down": max(0, all - up - maintenance), "maintenance": maintenance],
                                                vms: try db.value(Int.self, "SELECT COUNT(*) FROM vm") ?? 0,
                                                migrations: migrations, leader: lease?.isLeader ?? true, attestation: attestation)
        }
    }
}
