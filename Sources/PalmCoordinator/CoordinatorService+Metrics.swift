import PalmMetrics

extension CoordinatorService {
    /// The cluster as the database holds it, for the inventory gauges at each scrape: hosts up
    /// (reported within the host timeout), down, in maintenance; VMs; migrations by state; whether
    /// this coordinator leads. nil when the database cannot be read (the gauges keep their values).
    public func metricsInventory() -> CoordinatorMetrics.Inventory? {
        let now = clock()
        return try? store.read { db in
            let maintenance = try db.value(Int.self, "SELECT COUNT(*) FROM host WHERE maintenance = 1") ?? 0
            let up = try db.value(Int.self, "SELECT COUNT(*) FROM host WHERE maintenance = 0 AND last_heartbeat >= ?",
                                  arguments: [now - settings.hostTimeout]) ?? 0
            let all = try db.value(Int.self, "SELECT COUNT(*) FROM host") ?? 0
            var migrations: [String: Int] = [:]
            for state in CoordinatorMetrics.Inventory.migrationStates {
                migrations[state] = try db.value(Int.self, "SELECT COUNT(*) FROM migration WHERE state = ?", arguments: [state]) ?? 0
            }
            return CoordinatorMetrics.Inventory(hosts: ["up": up, "down": max(0, all - up - maintenance), "maintenance": maintenance],
                                                vms: try db.value(Int.self, "SELECT COUNT(*) FROM vm") ?? 0,
                                                migrations: migrations, leader: lease?.isLeader ?? true)
        }
    }
}
