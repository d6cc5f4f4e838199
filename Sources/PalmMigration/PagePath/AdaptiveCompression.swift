/// Decides, batch by batch, whether one page stream compresses (the `auto` setting), from what
/// this stream measures: how long compressing takes per byte of page data, how much it saves,
/// and how long writing takes per byte on the wire — `SSL_write`'s encryption plus whatever the
/// link and the receiver hold it back. Compressing pays when the time it costs is less than the
/// writing time it saves:
///
/// ```text
///   compress  ⇔  compress s/B  ≤  preference × (1 − wire B ÷ data B) × write s/B
///
///   trial:   raw, compressed, raw, compressed     (batches with data pages; writes of both kinds
///                                                  give write s/B, the compressed ones the rest)
///   stretch: the chosen way × stretchBatches, then a new trial
/// ```
///
/// A cost model rather than a race between whole batches: batches differ in content (text,
/// random, zero), so two batches' wall times say more about their pages than about the codec.
/// Compression wins on a slow link or where encryption is dear for the CPU (Xen's rig under TCG);
/// raw wins on fast links with AES-NI, where lz4 is slower than the cipher.
///
/// Guarantees: while raw measures cheaper, only the trial's batches are compressed (2 of every
/// `2 × trialRounds + stretchBatches` batches with data); a batch without data pages is neither
/// compressed nor measured; nothing but this stream's own measurements decides.
public struct AdaptiveCompression: Sendable {
    /// Batches of each kind per trial, alternating.
    public static let trialRounds = 2
    /// Batches sent the chosen way between trials.
    public static let stretchBatches = 32
    /// Compression must cost at most this share of the writing time it saves (less CPU at the
    /// same speed: raw).
    public static let preference = 0.9

    /// What one batch cost, as the stream measured it.
    public struct Sample: Sendable {
        /// Page data in the batch (bytes before compression).
        public var dataBytes: Int
        /// Bytes the batch's frame put on the wire.
        public var wireBytes: Int
        /// Seconds spent compressing (0 for a raw batch).
        public var compressSeconds: Double
        /// Seconds `write` took for the frame.
        public var writeSeconds: Double

        public init(dataBytes: Int, wireBytes: Int, compressSeconds: Double, writeSeconds: Double) {
            self.dataBytes = dataBytes
            self.wireBytes = wireBytes
            self.compressSeconds = compressSeconds
            self.writeSeconds = writeSeconds
        }
    }

    private var trialIndex = 0
    private var stretchLeft = 0
    private var chosen = false
    private var written = (seconds: 0.0, bytes: 0)
    private var packed = (seconds: 0.0, dataBytes: 0, wireBytes: 0)

    public init() {}

    /// Whether the next batch (with data pages) is compressed.
    public var compressNext: Bool {
        stretchLeft > 0 ? chosen : trialIndex % 2 == 1
    }

    /// Whether the next batch belongs to a trial, so its costs are measured (a stretch's are not).
    public var isTrial: Bool { stretchLeft == 0 }

    /// The way the last trial chose (false before the first trial ended).
    public var choice: Bool { chosen }

    /// Records a batch sent the way ``compressNext`` said (`compressed`: compression was tried).
    public mutating func record(compressed: Bool, _ sample: Sample) {
        guard sample.dataBytes > 0 else { return }
        if stretchLeft > 0 {
            stretchLeft -= 1
            return
        }
        written.seconds += sample.writeSeconds
        written.bytes += sample.wireBytes
        if compressed {
            packed.seconds += sample.compressSeconds
            packed.dataBytes += sample.dataBytes
            packed.wireBytes += sample.wireBytes
        }
        trialIndex += 1
        guard trialIndex == 2 * Self.trialRounds else { return }
        let writePerByte = written.seconds / Double(max(written.bytes, 1))
        let compressPerByte = packed.seconds / Double(max(packed.dataBytes, 1))
        let saved = 1 - Double(packed.wireBytes) / Double(max(packed.dataBytes, 1))
        chosen = saved > 0 && compressPerByte <= Self.preference * saved * writePerByte
        stretchLeft = Self.stretchBatches
        trialIndex = 0
        written = (0, 0)
        packed = (0, 0, 0)
    }
}
