/// Predicted cost of live-migrating a VM: the seconds pre-copy will spend on the link.
///
/// Round 0 sends all of RAM; each later round resends what the guest dirtied meanwhile, so with a
/// link of rate L and a guest dirtying D bytes/s the rounds form a geometric series of ratio D/L:
/// total ≈ RAM / (L − D). A guest that dirties as fast as the link is throttled and capped by the
/// engine at `maxRAMMultiple` × RAM, which bounds its cost.
public struct MigrationCostModel: Sendable {
    public var policy: SchedulerPolicy
    public init(policy: SchedulerPolicy) { self.policy = policy }

    public func seconds(memoryBytes: UInt64, dirtyPagesPerSecond: Double) -> Double {
        let ram = Double(memoryBytes)
        let link = max(policy.linkRate, 1)
        let dirty = max(dirtyPagesPerSecond, 0) * policy.pageSize
        let capped = ram * policy.maxRAMMultiple / link
        guard dirty < link else { return capped }
        return min(ram / (link - dirty), capped)
    }
}
