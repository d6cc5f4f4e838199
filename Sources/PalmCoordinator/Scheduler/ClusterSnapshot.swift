/// The cluster as the scheduler sees it in one cycle: hosts with their load, VMs with their cost
/// drivers, and the migrations already in flight. A value: the scheduler plans on a copy and
/// applies its own moves to it as it goes, so each move is judged against the state the earlier
/// ones leave behind.
public struct ClusterSnapshot: Sendable, Equatable {
    public struct Host: Sendable, Equatable {
        public var name: String
        public var cpus: Double
        /// Fraction of the host's CPUs in use (0…1).
        public var cpuLoad: Double
        public var memoryTotal: UInt64
        public var memoryUsed: UInt64
        /// Heartbeating recently.
        public var up: Bool
        /// In maintenance: never a destination, its VMs are not rebalanced.
        public var maintenance: Bool
        /// Being drained: every VM leaves it.
        public var evacuating: Bool
        /// Why its attestation does not let it take part (nil: it does): never a destination, never
        /// the source of a balance move (an operator may still evacuate it).
        public var untrusted: String?

        public init(name: String, cpus: Double, cpuLoad: Double, memoryTotal: UInt64, memoryUsed: UInt64,
                    up: Bool = true, maintenance: Bool = false, evacuating: Bool = false, untrusted: String? = nil) {
            self.untrusted = untrusted
            self.name = name
            self.cpus = cpus
            self.cpuLoad = cpuLoad
            self.memoryTotal = memoryTotal
            self.memoryUsed = memoryUsed
            self.up = up
            self.maintenance = maintenance
            self.evacuating = evacuating
        }

        /// May receive VMs.
        public var acceptsVMs: Bool { up && !maintenance && !evacuating && untrusted == nil && memoryTotal > 0 }

        public var memoryLoad: Double { memoryTotal == 0 ? 1 : Double(memoryUsed) / Double(memoryTotal) }

        /// The host's load on its most loaded resource, the quantity the scheduler balances.
        public var pressure: Double { max(cpuLoad, memoryLoad) }
    }

    public struct VM: Sendable, Equatable {
        public var name: String
        public var host: String
        public var memoryBytes: UInt64
        /// Pages dirtied per second.
        public var dirtyRate: Double
        /// CPUs' worth of load.
        public var cpu: Double
        /// When it last finished a migration (seconds since 1970), if ever.
        public var lastMoved: Double?
        /// When its last migration attempt failed, if it did.
        public var lastFailed: Double?

        public init(name: String, host: String, memoryBytes: UInt64, dirtyRate: Double = 0, cpu: Double = 0,
                    lastMoved: Double? = nil, lastFailed: Double? = nil) {
            self.lastFailed = lastFailed
            self.name = name
            self.host = host
            self.memoryBytes = memoryBytes
            self.dirtyRate = dirtyRate
            self.cpu = cpu
            self.lastMoved = lastMoved
        }
    }

    /// A migration that is running or about to: it occupies a slot on both hosts and its memory
    /// is already counted on the destination.
    public struct InFlight: Sendable, Equatable {
        public var vm: String
        public var source: String
        public var destination: String
        public init(vm: String, source: String, destination: String) {
            self.vm = vm
            self.source = source
            self.destination = destination
        }
    }

    public var hosts: [Host]
    public var vms: [VM]
    public var inFlight: [InFlight]

    public init(hosts: [Host], vms: [VM], inFlight: [InFlight] = []) {
        self.hosts = hosts
        self.vms = vms
        self.inFlight = inFlight
    }
}
