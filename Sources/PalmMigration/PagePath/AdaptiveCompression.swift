/// Decides, batch by batch, whether one page stream compresses (the `auto` setting): it measures
/// what sending a batch costs each way — wall-clock seconds per page of data, from the copy to the
/// end of the write, so a link that holds the write back and a CPU busy compressing both count —
/// and keeps the cheaper way for a stretch of batches, then tries both again.
///
/// ```text
///   trial:   raw, compressed, raw, compressed      (batches with data pages only)
///   stretch: the cheaper way × stretchBatches       compressed only if ≤ 95 % of raw's cost
///   trial … stretch … (every decision from this stream's own last trial)
/// ```
///
/// Compression pays where the link (or the receiver) is slower than the codec: on a 1 Gb/s link,
/// or where encryption is expensive for the CPU; it costs where the CPU is the bottleneck and the
/// codec slower than the cipher (fast links, AES-NI). The trial finds out on the hosts at hand.
///
/// Guarantees: when raw sending measured cheaper, compression runs only on the trial's batches
/// (2 of every `2 × trialRounds + stretchBatches` batches with data); a batch without data pages
/// is neither compressed nor measured; the decision uses nothing but this stream's measurements.
public struct AdaptiveCompression: Sendable {
    /// Batches of each kind per trial, alternating.
    public static let trialRounds = 2
    /// Batches sent the chosen way between trials.
    public static let stretchBatches = 32
    /// Compressed must cost at most this share of raw to be chosen (less CPU and the same speed:
    /// raw).
    public static let preference = 0.95

    private var trialIndex = 0
    private var stretchLeft = 0
    private var chosen = false
    private var seconds: (raw: Double, compressed: Double) = (0, 0)
    private var pages: (raw: Int, compressed: Int) = (0, 0)

    public init() {}

    /// Whether the next batch (with data pages) is compressed.
    public var compressNext: Bool {
        stretchLeft > 0 ? chosen : trialIndex % 2 == 1
    }

    /// The way the last trial chose (false before the first trial ended).
    public var choice: Bool { chosen }

    /// Records what a batch with `dataPages` data pages cost, sent the way ``compressNext`` said.
    public mutating func record(compressed: Bool, seconds elapsed: Double, dataPages: Int) {
        guard dataPages > 0 else { return }
        if stretchLeft > 0 {
            stretchLeft -= 1
            return
        }
        if compressed {
            seconds.compressed += elapsed
            pages.compressed += dataPages
        } else {
            seconds.raw += elapsed
            pages.raw += dataPages
        }
        trialIndex += 1
        guard trialIndex == 2 * Self.trialRounds else { return }
        let raw = seconds.raw / Double(max(pages.raw, 1))
        let packed = seconds.compressed / Double(max(pages.compressed, 1))
        chosen = packed <= raw * Self.preference
        stretchLeft = Self.stretchBatches
        trialIndex = 0
        seconds = (0, 0)
        pages = (0, 0)
    }
}
