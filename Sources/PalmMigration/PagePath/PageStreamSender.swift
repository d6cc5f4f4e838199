import Atomics
import Foundation
import PalmCompression
import PalmHypervisor
import PalmSupport
import PalmCrypto
import PalmWire

/// One page stream on the source: a channel, the thread that feeds it, and the buffers every
/// batch reuses.
///
/// A batch takes one copy of each page — the driver copies the pages into ``slots`` — and is then
/// handled there while it is hot in cache: a zero scan, the page's SHA-256 leaf of the image
/// digest (over exactly the bytes that go out), optional compression, and one write of
/// frame prefix + page data straight from the buffer into `SSL_write`.
///
/// ```text
///   slots: | reserved for the prefix | page 0 | page 1 | … | page batchPages−1 |
///                          ^ prefix copied here, right before the data: one write per batch
/// ```
final class PageStreamSender: @unchecked Sendable {
    let index: Int
    let channel: SecureChannel
    private let domain: SourceDomain
    private let digest: ImageDigest
    private let pageSize: Int
    private let batchPages: Int
    private let codec: PageCodec?
    /// `auto`: whether each batch is compressed, from this stream's own trials (nil: always ``codec``).
    private var adaptive: AdaptiveCompression?
    private let prefix: MemoryBatchPrefix
    private let reserve: Int
    private let slots: UnsafeMutableRawBufferPointer
    private let packed: UnsafeMutableRawBufferPointer?
    private let pfns: UnsafeMutableBufferPointer<UInt64>
    private let hasher = PageHasher()
    private let thread: JobThread

    /// Live counters of the current round, read by the engine while the round runs.
    let pages = ManagedAtomic<UInt64>(0)
    let zeroPages = ManagedAtomic<UInt64>(0)
    let bytes = ManagedAtomic<UInt64>(0)
    let compressedBatches = ManagedAtomic<UInt64>(0)

    init(index: Int, channel: SecureChannel, domain: SourceDomain, digest: ImageDigest, pageSize: Int, batchPages: Int,
         compression: CompressionSetting, nice: Int = 0) {
        self.index = index
        self.channel = channel
        self.domain = domain
        self.digest = digest
        self.pageSize = pageSize
        self.batchPages = batchPages
        codec = compression.codec == .none ? nil : PageCodec(compression.codec)
        adaptive = compression == .auto ? AdaptiveCompression() : nil
        prefix = MemoryBatchPrefix(capacityPages: batchPages)
        reserve = (WireProtocol.headerSize + MemoryBatchDecoder.headerSize + batchPages * MemoryBatchDecoder.recordSize + 63) / 64 * 64
        slots = .allocate(byteCount: reserve + batchPages * pageSize, alignment: 64)
        packed = codec == nil ? nil : .allocate(byteCount: reserve + batchPages * pageSize, alignment: 64)
        pfns = .allocate(capacity: batchPages)
        thread = JobThread(name: "palm-stream-\(index)", nice: nice)
    }

    deinit {
        thread.stop()
        slots.deallocate()
        packed?.deallocate()
        pfns.deallocate()
    }

    /// Starts sending this stream's share of `work` on the stream's thread; `done` is called
    /// with the error that ended it (nil: the share was sent, and on an extra stream its
    /// ROUND_END with it).
    func start(_ work: RoundWork, done: @escaping @Sendable (Error?) -> Void) {
        pages.store(0, ordering: .relaxed)
        zeroPages.store(0, ordering: .relaxed)
        bytes.store(0, ordering: .relaxed)
        thread.submit { [self] in
            do {
                try send(work)
                done(nil)
            } catch {
                done(error)
            }
        }
    }

    private func send(_ work: RoundWork) throws {
        var n = 0
        while let chunk = work.claim() {
            try work.forEachPage(in: chunk) { pfn in
                pfns[n] = pfn
                n += 1
                if n == batchPages {
                    try sendBatch(round: work.round, count: n)
                    n = 0
                }
            }
        }
        if n > 0 { try sendBatch(round: work.round, count: n) }
        // The session channel's ROUND_END carries the round's totals and is sent by the engine
        // once every stream is done; an extra stream ends its own share here.
        if index > 0 {
            let end = Message.roundEnd(RoundEnd(round: work.round, pagesSent: pages.load(ordering: .relaxed),
                                                zeroPages: zeroPages.load(ordering: .relaxed),
                                                bytesSent: bytes.load(ordering: .relaxed), durationMicros: 0, dirtyPages: 0))
            try channel.send(end)
        }
    }

    /// Copies, scans, hashes, (compresses) and writes `count` pages of `pfns`.
    private func sendBatch(round: UInt32, count: Int) throws {
        let compress = adaptive?.compressNext ?? true
        // Only a trial batch is timed: a stretch's batches are counted, not measured.
        let timed = adaptive?.isTrial == true
        let base = slots.baseAddress! + reserve
        try domain.copyPages(UnsafeBufferPointer(rebasing: pfns[0..<count]), into: base)
        prefix.begin(round: round)
        var data = 0, zeros: UInt64 = 0
        for i in 0..<count {
            let slot = base + i * pageSize
            if PageScan.isZero(UnsafeRawBufferPointer(start: slot, count: pageSize)) {
                prefix.append(pfn: pfns[i], kind: .zero)
                digest.recordZero(pfn: pfns[i])
                zeros += 1
                continue
            }
            let packedSlot = base + data * pageSize
            if data != i { packedSlot.copyMemory(from: slot, byteCount: pageSize) }
            // The leaf covers exactly what goes out, not live guest memory.
            digest.record(pfn: pfns[i], page: UnsafeRawBufferPointer(start: packedSlot, count: pageSize), hasher: hasher)
            prefix.append(pfn: pfns[i], kind: .data)
            data += 1
        }
        var out = UnsafeMutableRawBufferPointer(start: slots.baseAddress! + reserve, count: data * pageSize)
        var used = PageCompression.none
        let compressStart = timed ? MonotonicClock.now() : 0
        if compress, let codec, let packed, data > 0,
           let n = codec.compress(UnsafeRawBufferPointer(out), into: UnsafeMutableRawBufferPointer(start: packed.baseAddress! + reserve, count: data * pageSize)) {
            out = UnsafeMutableRawBufferPointer(start: packed.baseAddress! + reserve, count: n)
            used = codec.codec
            compressedBatches.wrappingIncrement(ordering: .relaxed)
        }
        let writeStart = timed ? MonotonicClock.now() : 0
        let head = prefix.finish(codec: used, dataLength: out.count)
        let frameStart = out.baseAddress! - head.count
        UnsafeMutableRawPointer(frameStart).copyMemory(from: head.baseAddress!, byteCount: head.count)
        let frame = UnsafeRawBufferPointer(start: frameStart, count: head.count + out.count)
        try channel.write(frame)
        if adaptive != nil {
            let written = timed ? MonotonicClock.now() : 0
            adaptive?.record(compressed: compress, .init(dataBytes: data * pageSize, wireBytes: frame.count,
                                                         compressSeconds: writeStart - compressStart, writeSeconds: written - writeStart))
        }
        pages.wrappingIncrement(by: UInt64(count), ordering: .relaxed)
        zeroPages.wrappingIncrement(by: zeros, ordering: .relaxed)
        bytes.wrappingIncrement(by: UInt64(frame.count), ordering: .relaxed)
    }
}

/// A thread that runs its owner's jobs one after another (a page stream's thread: it lives as
/// long as the migration, so rounds do not pay for thread creation).
final class JobThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopping = false

    /// `nice`: the thread's nice value (``ThreadPriority``), set on the thread before its first job.
    init(name: String, nice: Int = 0) {
        let thread = Thread { [self] in
            if nice > 0 { ThreadPriority.yield(nice: nice) }
            run()
        }
        thread.name = name
        thread.start()
    }

    func submit(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Ends the thread once the jobs already submitted have run.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
