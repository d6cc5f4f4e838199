/// The events palm logs, by stable name — here, below every library that logs (the engine, the
/// agents, the coordinator and the journald handler name the same events), not in the wire format.
/// A log call attaches one as the `event` metadata value; the journald handler (PalmSystemd) turns
/// it into the event's `MESSAGE_ID`, so operators can
/// `journalctl MESSAGE_ID=…` for every commit, abort or refusal in the cluster. Names and their
/// MESSAGE_IDs never change once released; new events are added at the end.
public enum PalmEvent: String, CaseIterable, Sendable {
    case daemonReady = "daemon.ready"
    case daemonReloaded = "daemon.reloaded"
    case daemonStopping = "daemon.stopping"
    case migrationStarted = "migration.started"
    case roundDone = "migration.round"
    case stopAndCopy = "migration.stop-and-copy"
    case committed = "migration.committed"
    case aborted = "migration.aborted"
    case resumedHere = "migration.resumed"
    case attestationFailed = "attestation.failed"
    case ticketRejected = "ticket.rejected"
    case accessDenied = "access.denied"
    case connectionRefused = "connection.refused"
    case recovery = "migration.recovered"
    case migrationScheduled = "migration.scheduled"
    case auditHead = "audit.head"
    case leaderElected = "coordinator.leading"
    case leaderFollowing = "coordinator.following"
    case vmLifecycle = "vm.lifecycle"
}
