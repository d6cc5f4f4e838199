import Foundation

/// What one migration did, measured on the source: printed for people, encoded for scripts.
public struct MigrationReport: Codable, Sendable, Equatable {
    public struct Round: Codable, Sendable, Equatable {
        public var round: Int
        /// Pages sent in this round (data + zero records).
        public var pages: UInt64
        public var zeroPages: UInt64
        /// Frame bytes written for this round.
        public var bytes: UInt64
        public var seconds: Double
        /// Pages the guest dirtied during the round, per second.
        public var dirtyRate: Double
        /// Pages found dirty when the round ended.
        public var dirtyAfter: UInt64
        public var throttlePercent: Int
        /// True for the stop-and-copy round (VM paused).
        public var final: Bool
    }

    /// Where the downtime went, phase by phase, measured on the source. The phases follow one
    /// another without gaps, so they add up to `downtimeSeconds`.
    public struct DowntimePhases: Codable, Sendable, Equatable {
        /// From asking the hypervisor to stop the VM until it reported it stopped (on Xen: the
        /// guest's own suspend).
        public var pause: Double
        /// The stop-and-copy round: the pages dirtied since the last pre-copy round.
        public var finalRound: Double
        /// Capturing the vCPU and device state.
        public var captureState: Double
        /// STATE and MANIFEST sent until READY verified: the destination completing the VM from
        /// the state and checking the image digest.
        public var destinationReady: Double
        /// The commit record written, COMMIT sent, until DONE: the destination starting the VM.
        public var commit: Double

        public var total: Double { pause + finalRound + captureState + destinationReady + commit }

        /// "pause 12.0 ms · final round …", for logs and the rendered report.
        public var summary: String {
            [("pause", pause), ("final round", finalRound), ("state", captureState),
             ("destination ready", destinationReady), ("commit", commit)]
                .map { "\($0.0) " + String(format: "%.1f ms", $0.1 * 1000) }.joined(separator: " · ")
        }
    }

    public var vm: String
    public var destination: String
    public var mode: String
    public var memoryBytes: UInt64
    public var totalSeconds: Double
    /// Source pause → destination resumed (DONE received), measured.
    public var downtimeSeconds: Double
    public var downtimePhases: DowntimePhases
    /// What the policy predicted when it stopped pre-copy.
    public var predictedDowntimeSeconds: Double
    /// What the prediction's fixed part came from: "model" (its estimate of each part) or
    /// "earlier hand-offs" (measured to this destination, ``HandoffHistory``).
    public var predictionBasis: String?
    public var downtimeTargetSeconds: Double
    public var stopReason: String
    public var rounds: [Round]
    /// All bytes written to the TLS channel (frames), i.e. the TLS payload.
    public var bytesOnWire: UInt64
    public var throughputMiBps: Double
    public var imageDigest: String
    public var sourceCPUSeconds: Double
    /// Page streams the migration used (the session channel included).
    public var streams: Int
    /// The codec MEMORY batches could use, and how many batches it shrank.
    public var compression: String
    public var compressedBatches: UInt64
    /// Before the session (``totalSeconds`` starts at HELLO): everything the agent's migrate call
    /// did first — checking the ticket, opening the hypervisor, then opening the VM and connecting
    /// to the destination side by side, loading its keys. Set by the agent that measured it.
    public var preparationSeconds: Double?
    /// After DONE (where ``totalSeconds`` ends): destroying the source's copy of the VM.
    public var cleanupSeconds: Double?
    /// Set when the source's copy could not be destroyed after DONE: why. The migration is
    /// committed all the same — the VM runs on the destination — and the copy, paused, must never
    /// be resumed; `palm-source recover` (the agent runs it at every start) destroys it.
    public var sourceCopyLeft: String?
    /// How the destination attested: `tpm` (its TPM's quote, checked against the enrolled key and
    /// the platform policy) or `software` (its own signed report, accepted by the source's
    /// configuration). Optional for reports of earlier versions.
    public var destinationAttestation: String?
    /// With `tpm`: where the destination's TLS key lives — `tpm` (certified by its attestation
    /// key) or `file` (accepted by attestation.tls_key = file).
    public var destinationTLSKey: String? = nil

    public var pagesSent: UInt64 { rounds.reduce(0) { $0 + $1.pages } }

    /// A human-readable report.
    public func rendered() -> String {
        var s = ""
        func line(_ t: String) { s += t + "\n" }
        line("migration of \(vm) → \(destination) (\(mode), \(memoryBytes >> 20) MiB): OK")
        let around = [preparationSeconds.map { String(format: "%.2f s opening the VM and connecting before", $0) },
                      cleanupSeconds.map { String(format: "%.2f s destroying the source's copy after", $0) }].compactMap { $0 }
        line(String(format: "  total time      %8.3f s", totalSeconds) + (around.isEmpty ? "" : "   (+ \(around.joined(separator: ", ")))"))
        line(String(format: "  downtime        %8.1f ms   (predicted %.1f ms from the %@, target %.0f ms)",
                    downtimeSeconds * 1000, predictedDowntimeSeconds * 1000, predictionBasis ?? "model", downtimeTargetSeconds * 1000))
        line("    of which      \(downtimePhases.summary)")
        if let sourceCopyLeft {
            line("  WARNING         the source's paused copy was NOT destroyed (\(sourceCopyLeft)); never resume it here:")
            line("                  `palm-source recover` destroys it (the agent runs it at every start)")
        }
        if let destinationAttestation {
            line("  attestation     \(destinationAttestation)" + (destinationAttestation == "software"
                ? " (the destination's own report, not rooted in a TPM: accepted by attestation.require = software)"
                : destinationTLSKey == "file" ? " (the destination's TPM; its TLS key from a file: accepted by attestation.tls_key = file)"
                : " (the destination's TPM, which also holds its TLS key)"))
        }
        line("  pre-copy ended  \(stopReason)")
        line(String(format: "  sent            %8.1f MiB in %d rounds, %.1f MiB/s, %.2f× RAM",
                    Double(bytesOnWire) / 1048576, rounds.count, throughputMiBps,
                    Double(bytesOnWire) / Double(max(memoryBytes, 1))))
        line(String(format: "  source CPU      %8.2f s", sourceCPUSeconds))
        line("  streams         \(streams), compression \(compression)\(compression == "none" ? "" : " (\(compressedBatches) batches compressed)")")
        line("  image digest    \(imageDigest)")
        line("  round      pages    zero      MiB   seconds   dirty/s   dirty after  throttle")
        for r in rounds {
            line(String(format: "  %5d%@ %9llu %7llu %8.1f %9.3f %9.0f %13llu %8d%%", r.round, r.final ? "*" : " ",
                        r.pages, r.zeroPages, Double(r.bytes) / 1048576, r.seconds, r.dirtyRate, r.dirtyAfter, r.throttlePercent))
        }
        line("  (* = stop-and-copy round, VM paused)")
        return s
    }

    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? String(decoding: e.encode(self), as: UTF8.self)) ?? "{}"
    }
}

/// Live progress, reported while a migration runs.
public struct MigrationProgress: Sendable, Equatable {
    public enum Phase: String, Sendable { case handshake, precopy, stopAndCopy = "stop-and-copy", handoff, done }
    public var phase: Phase
    public var round: Int
    public var pagesLeftInRound: UInt64
    public var pagesSentInRound: UInt64
    public var bytesPerSecond: Double
    public var throttlePercent: Int

    public var line: String {
        String(format: "%@ round %d: %llu pages left, %.0f MiB/s%@", phase.rawValue, round, pagesLeftInRound,
               bytesPerSecond / 1048576, throttlePercent > 0 ? ", throttle \(throttlePercent)%" : "")
    }
}
