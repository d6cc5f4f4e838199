import PalmSupport
import PalmHypervisor
import PalmWire

/// Everything one outgoing migration has learned so far, handed from phase to phase of
/// ``MigrationSender`` (handshake → streams → pre-copy rounds → stop-and-copy → hand-off).
struct SenderSession {
    let info: VMInfo
    let started: Double
    let cpuStarted: Double
    let nonce = Digest32.random()
    var attestation: Attestation?
    var prepared: Prepared?
    /// The session channel's exporter-derived key that extra streams prove membership with.
    var joinKey: [UInt8] = []
    var streams: [PageStreamSender] = []
    let digest: ImageDigest
    /// What the next round sends.
    var dirty: DirtyBitmap
    var rounds: [MigrationReport.Round] = []
    /// Pre-copy bytes and seconds so far: the measured transfer rate.
    var transferBytes: UInt64 = 0
    var transferSeconds = 0.0
    var previousDirty: Int?
    var throttle = 0
    var stopReason = ConvergencePolicy.StopReason.stopAndCopyMode
    var predicted = 0.0
    var costs = HandoffCosts()
    var timeline = HandoffTimeline()
    var compressedBatches: UInt64 = 0
    /// Destroying the source's copy after DONE (nil: it could not be destroyed).
    var cleanupSeconds: Double?
    /// Why the source's copy could not be destroyed after DONE.
    var sourceCopyLeft: String?
    /// Digest chunks the final round changed (its share of the hand-off is sealing them).
    var finalChunks = 0

    init(info: VMInfo) {
        self.info = info
        started = MonotonicClock.now()
        cpuStarted = MonotonicClock.processCPUSeconds()
        digest = ImageDigest(pageCount: info.pageCount, pageSize: info.pageSize)
        dirty = DirtyBitmap.all(pageCount: info.pageCount)
    }

    /// The last round's bytes and seconds.
    var lastRoundBytes: UInt64 = 0
    var lastRoundSeconds = 0.0

    /// The rate the final round is predicted to go at: the last round's, when it was large
    /// enough to measure past the socket buffers (it wrote pages the destination had already
    /// populated, as the final round does), else the whole pre-copy's.
    var transferRate: Double {
        if lastRoundBytes >= 16 << 20, lastRoundSeconds > 0 { return Double(lastRoundBytes) / lastRoundSeconds }
        return transferSeconds > 0 ? Double(transferBytes) / transferSeconds : 0
    }
}

/// The fixed costs of a hand-off, each measured on this migration (or estimated by the driver
/// where it cannot be measured before the pause), that the downtime prediction adds to the time
/// the last dirty pages take to send.
struct HandoffCosts {
    /// The driver's estimate of stopping the VM (sim: a signal; Xen: the guest's suspend).
    var pause = 0.0
    /// One round trip on the session channel (the lowest TCP has measured on it).
    var roundTrip = 0.0
    /// One durable journal record on this host (measured when the migration was recorded).
    var durableRecord = 0.0
    /// One ECDSA operation here (measured on the attestation check).
    var signature = 0.0
    /// Hashing one changed chunk of the image digest (measured when round 0 was sealed).
    var digestChunk = 0.0
    /// The destination's own share, as it measured it (PREPARED).
    var destination = 0.0
    /// What earlier hand-offs to this destination measured for everything above but the
    /// sealing (``HandoffHistory``); when known it replaces the sum of the estimates.
    var measured: Double?

    /// "pause 0.5 ms · round trip 0.1 ms · …", for the round log.
    var summary: String {
        let parts = [("pause", pause), ("round trip", roundTrip), ("journal", durableRecord), ("signature", signature),
                     ("digest chunk", digestChunk), ("destination", destination)]
            .map { "\($0.0) " + String(format: "%.3f ms", $0.1 * 1000) }.joined(separator: " · ")
        return measured.map { String(format: "earlier hand-offs %.3f ms (model: ", $0 * 1000) + parts + ")" } ?? parts
    }

    /// Sealing `changedChunks` chunks of the image digest on both ends.
    func sealing(changedChunks: Int) -> Double { 2 * Double(changedChunks) * digestChunk }

    /// The prediction's fixed part for a final round that changes `changedChunks` chunks of the
    /// image digest (one per 64-page word of the dirty bitmap): the digest sealed on both ends
    /// (O(dirty)), plus what earlier hand-offs to this destination measured for the rest — or,
    /// before the first, the model of it: pause, manifest and COMMIT signatures, READY's check,
    /// the commit record, two round trips (MANIFEST→READY, COMMIT→DONE), the destination's share.
    func fixed(changedChunks: Int) -> Double {
        sealing(changedChunks: changedChunks)
            + (measured ?? pause + 3 * signature + durableRecord + 2 * roundTrip + destination)
    }
}

/// Instants of the hand-off, measured back to back on the source.
struct HandoffTimeline {
    var pauseRequested = 0.0
    var paused = 0.0
    var finalRoundDone = 0.0
    var stateCaptured = 0.0
    var ready = 0.0
    var resumed = 0.0

    var phases: MigrationReport.DowntimePhases {
        MigrationReport.DowntimePhases(pause: paused - pauseRequested, finalRound: finalRoundDone - paused,
                                       captureState: stateCaptured - finalRoundDone, destinationReady: ready - stateCaptured,
                                       commit: resumed - ready)
    }

    var downtime: Double { resumed - pauseRequested }
}
