import PalmSupport
import Foundation
import Logging
import PalmHypervisor
import PalmMigration
import PalmProtection
import PalmTestSupport
import PalmEngineTLS
import PalmCrypto
import PalmTLS
import PalmWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A channel that holds every write back for `delay` seconds before it reaches the wire (a slow
/// path on one stream), in order. Reads first let the held writes out, so the wrapped TLS
/// channel is never used by two threads at once.
final class DelayedChannel: SecureChannel, @unchecked Sendable {
    let inner: TLSChannel
    let delay: Double
    private let condition = NSCondition()
    private var queue: [(due: Double, bytes: [UInt8])] = []
    private var stopping = false
    private var failed: Error?

    init(_ inner: TLSChannel, delay: Double) {
        self.inner = inner
        self.delay = delay
        Thread { [self] in pump() }.start()
    }

    private func pump() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty { condition.unlock(); return }
            let next = queue[0]
            condition.unlock()
            let wait = next.due - MonotonicClock.now()
            if wait > 0 { usleep(UInt32(wait * 1e6)) }  // the simulated link's latency, not synchronisation
            do { try inner.write(next.bytes) } catch { condition.lock(); failed = error; condition.unlock() }
            condition.lock()
            queue.removeFirst()
            condition.broadcast()
            condition.unlock()
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        condition.lock()
        defer { condition.unlock() }
        if let failed { throw failed }
        queue.append((MonotonicClock.now() + delay, Array(bytes)))
        condition.broadcast()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        condition.lock()
        while !queue.isEmpty { condition.wait() }
        condition.unlock()
        return try inner.read(into: buffer)
    }

    func channelBinding() throws -> Digest32 { try inner.channelBinding() }
    func exportKeyingMaterial(label: String, context: [UInt8]?, length: Int) throws -> [UInt8] {
        try inner.exportKeyingMaterial(label: label, context: context, length: length)
    }
    var peer: CertificateIdentity { inner.peer }
    var peerKey: VerifyingKey { inner.peerKey }
    var roundTripTime: Double? { inner.roundTripTime }
    func close() {
        condition.lock(); stopping = true; condition.broadcast(); condition.unlock()
        inner.close()
    }
    func interrupt(keepWriting: Bool) { inner.interrupt(keepWriting: keepWriting) }
    func setIOTimeout(_ seconds: Double) { inner.setIOTimeout(seconds) }
}

/// A running source whose every collection of the dirty log, while the guest runs, first waits
/// (up to 10 s) until the guest has dirtied at least `minimum` pages since the last one. A guest
/// starved of CPU on a loaded machine for longer than a millisecond round would otherwise show an
/// empty dirty set, and pre-copy would rightly end at the dirty-page floor — in a test that needs
/// many rounds. Polls the guest's own dirty count: the condition, not a guess at a duration.
///
/// With `refuseDestroy`, destroying it after DONE fails (a source copy the hypervisor will not
/// destroy) and the copy stays as it was.
final class SteadilyDirtiedSource: SourceDomain {
    let inner: SourceDomain
    let minimum: Int
    let refuseDestroy: Bool
    private var paused = false
    init(_ inner: SourceDomain, minimum: Int, refuseDestroy: Bool = false) {
        self.inner = inner
        self.minimum = minimum
        self.refuseDestroy = refuseDestroy
    }

    func collectDirty(into bitmap: inout DirtyBitmap) throws -> Int {
        let deadline = MonotonicClock.now() + 10
        while !paused, try (inner.peekDirtyCount() ?? minimum) < minimum, MonotonicClock.now() < deadline {
            var poll = timespec(tv_sec: 0, tv_nsec: 100_000)
            nanosleep(&poll, nil)
        }
        return try inner.collectDirty(into: &bitmap)
    }
    func pause() throws { try inner.pause(); paused = true }
    func resume() throws { try inner.resume(); paused = false }
    var info: VMInfo { inner.info }
    var platform: [UInt8] { inner.platform }
    var pauseEstimate: Double { inner.pauseEstimate }
    func prepareForPause() throws { try inner.prepareForPause() }
    func enableDirtyLog() throws { try inner.enableDirtyLog() }
    func peekDirtyCount() throws -> Int? { try inner.peekDirtyCount() }
    func disableDirtyLog() throws { try inner.disableDirtyLog() }
    /// Each thread that read pages, with its nice value as it read.
    let readers = LockedValueBox<[UInt: Int]>([:])
    func copyPages(_ pfns: UnsafeBufferPointer<UInt64>, into buffer: UnsafeMutableRawPointer) throws {
        let nice = ThreadPriority.currentNice, tid = UInt(pthread_self())
        readers.withLockedValue { $0[tid] = nice }
        try inner.copyPages(pfns, into: buffer)
    }
    func captureState() throws -> [UInt8] { try inner.captureState() }
    func setThrottle(percent: Int) throws { try inner.setThrottle(percent: percent) }
    func destroy() throws {
        if refuseDestroy { throw HypervisorError.guestFailed("destroy refused by the test") }
        try inner.destroy()
    }
}

/// A destination hypervisor that, when an incoming VM is resumed, first computes its image digest
/// from scratch over the image file — independently of the engine's incremental tree.
final class DigestingHypervisor: Hypervisor, @unchecked Sendable {
    let sim: SimHypervisor
    let digests = LockedValueBox<[String: Digest32]>([:])
    init(_ sim: SimHypervisor) { self.sim = sim }

    var name: String { sim.name }
    var version: String { sim.version }
    func listVMs() throws -> [VMInfo] { try sim.listVMs() }
    func freeMemoryBytes() throws -> UInt64 { try sim.freeMemoryBytes() }
    func openSource(vm: String) throws -> SourceDomain { try sim.openSource(vm: vm) }
    func incomingVMs() -> [String] { sim.incomingVMs() }
    func completeIncoming(vm: String) throws { try sim.completeIncoming(vm: vm) }
    func discardIncoming(vm: String) { sim.discardIncoming(vm: vm) }
    func createIncoming(config: VMConfig) throws -> DestinationDomain {
        Domain(inner: try sim.createIncoming(config: config), path: sim.root + "/" + config.name + ".incoming", owner: self)
    }

    final class Domain: DestinationDomain {
        let inner: DestinationDomain
        let path: String
        let owner: DigestingHypervisor
        init(inner: DestinationDomain, path: String, owner: DigestingHypervisor) {
            self.inner = inner
            self.path = path
            self.owner = owner
        }
        var info: VMInfo { inner.info }
        var resumeEstimate: Double { inner.resumeEstimate }
        func writePages(_ pages: IncomingPages) throws { try inner.writePages(pages) }
        func restoreState(_ state: [UInt8]) throws { try inner.restoreState(state) }
        func discard() throws { try inner.discard() }
        func resume() throws {
            let digest = try SimCluster.digest(of: SimImage.open(path: path))
            owner.digests.withLockedValue { $0[info.name] = digest }
            try inner.resume()
        }
    }
}

/// The engine in one process over real TLS on loopback, with sim guests: the round barrier and the
/// image digest checked where the agents' end-to-end tests cannot reach.
@Suite("Round barrier and image digest", .serialized)
struct RoundBarrierTests {
    let pki = TestPKI.shared

    struct Run {
        var report: MigrationReport
        var outcome: MigrationReceiver.Outcome
        var independentDigest: Digest32?
        var selfCheckPassed: Bool
        /// The nice value of each destination thread that served an extra stream, read when it ended.
        var streamThreadNice: [Int]
        /// The nice value of each source thread that read pages from the guest (by thread id),
        /// read by the thread itself as it read (no timing involved).
        var pageReaderNice: [UInt: Int]
        /// The source's copy after the migration returned (nil: destroyed).
        var sourceCopy: VMRunState?
    }

    /// Migrates a busy 64 MiB guest over `streams` streams, stream 1 delayed by `delay` seconds.
    func migrate(streams: Int, delay: Double, maxRounds: Int = 8, pageThreadNice: Int = 0, refuseDestroy: Bool = false) throws -> Run {
        let id = UUID().uuidString.prefix(8)
        let sourceRoot = "/dev/shm/palm-barrier-\(id)-a", destRoot = "/dev/shm/palm-barrier-\(id)-b"
        let source = try SimHypervisor(root: sourceRoot, memoryLimitBytes: 1 << 30, guestBinary: SimCluster.bin("palm-simguest"))
        let dest = DigestingHypervisor(try SimHypervisor(root: destRoot, memoryLimitBytes: 1 << 30, guestBinary: SimCluster.bin("palm-simguest")))
        defer {
            for h in [source, dest.sim] { for vm in (try? h.listVMs()) ?? [] { try? h.destroy(vm: vm.name) } }
            try? FileManager.default.removeItem(atPath: sourceRoot)
            try? FileManager.default.removeItem(atPath: destRoot)
        }
        try source.create(vm: "busy", memoryBytes: 64 << 20,
                          workload: .init(rate: 40_000, workingSetPages: 4096, pattern: .hotSet, hotPercent: 95))
        let logger = { () -> Logger in
            var l = Logger(label: "barrier-test")
            l.logLevel = .error
            return l
        }()
        let listener = try TLSListener(host: "127.0.0.1", port: 0, context: pki.context("server"))
        let sessions = IncomingSessions(pageThreadNice: pageThreadNice)
        let streamNice = LockedValueBox<[Int]>([])
        let outcome = LockedValueBox<Result<MigrationReceiver.Outcome?, Error>?>(nil)
        let attest: @Sendable (SessionBinding) throws -> Attestation = { b in
            Attestation(sourceNonce: b.nonce, exporter: b.exporter, agentDigest: .zero, configDigest: .zero, hypervisor: "sim",
                        hypervisorVersion: "", timestampMillis: 0, signature: [])
        }
        let accepting = Thread {
            var first = true
            while let ch = try? listener.accept(timeout: 30) {
                let isSession = first
                first = false
                Thread {
                    guard let message = try? FrameReader(stream: ch).readMessage() else { ch.close(); return }
                    if isSession {
                        let receiver = MigrationReceiver(channel: ch, hypervisor: dest, protections: Unprotected.receiver(attest: attest), logger: logger,
                                                         sessions: sessions)
                        let r = Result { try receiver.run(first: message) }
                        outcome.withLockedValue { $0 = r }
                    } else if case let .join(join) = message {
                        try? sessions.serveStream(join, channel: ch, logger: logger)
                        streamNice.withLockedValue { $0.append(ThreadPriority.currentNice) }
                        ch.close()
                    }
                }.start()
            }
        }
        accepting.start()
        defer { listener.close() }

        let clientContext = try pki.context("client")
        let connect = { @Sendable in try TLSChannel.connect(host: "127.0.0.1", port: listener.port, serverName: "127.0.0.1", context: clientContext) }
        var options = MigrationSender.Options()
        options.streams = streams
        options.batchPages = 64
        // Every round runs to the cap: no target met, no progress rule, no throttle.
        options.policy.downtimeTarget = 0.000_1
        options.policy.dirtyPageFloor = 0
        options.policy.maxRounds = maxRounds
        options.policy.maxRAMMultiple = 1000
        options.policy.minimumGain = 0
        options.policy.progressRatio = .infinity
        options.policy.linkRatio = .infinity
        options.policy.maxProjectedRounds = .infinity
        options.policy.throttleMax = 0
        options.pageThreadNice = pageThreadNice
        // Every round finds the guest's writes, however the machine schedules it (see the type).
        let domain = SteadilyDirtiedSource(try source.openSource(vm: "busy"), minimum: 64, refuseDestroy: refuseDestroy)
        let sender = MigrationSender(channel: try connect(), domain: domain, options: options,
                                     protections: Unprotected.sender, logger: logger,
                                     connectStream: { index -> SecureChannel in
                                         index == 1 ? DelayedChannel(try connect(), delay: delay) : try connect() })
        let report = try sender.run()
        let sourceCopy = try source.listVMs().first { $0.name == "busy" }?.state
        // The receiver has sent DONE; its outcome is recorded right after.
        let deadline = Date(timeIntervalSinceNow: 30)
        while outcome.current == nil, Date() < deadline { sched_yield() }
        guard let result = outcome.current, let received = try result.get() else { throw SimClusterError.command("no receiver outcome") }
        let check = try dest.sim.awaitSelfCheck(vm: "busy")
        return Run(report: report, outcome: received, independentDigest: dest.digests.current["busy"], selfCheckPassed: check.passed,
                   streamThreadNice: streamNice.current, pageReaderNice: domain.readers.current, sourceCopy: sourceCopy)
    }

    @Test("a delayed stream: pages that overtake it wait at the round barrier, and no newer copy is overwritten by an older")
    func delayedStream() throws {
        let run = try migrate(streams: 3, delay: 0.08)
        #expect(run.report.rounds.count >= 4, "several rounds re-send the hot set: \(run.report.rendered())")
        #expect(run.outcome.barrierWaits > 0, "the delayed stream made the others wait at least once")
        #expect(run.selfCheckPassed, "the guest's own check finds no stale page")
        #expect(run.outcome.imageDigest.hex == run.report.imageDigest)
        #expect(run.independentDigest?.hex == run.report.imageDigest)
    }

    @Test("page threads on both ends run at the configured nice value; the session's own threads do not")
    func pageThreadsYield() throws {
        let baseline = ThreadPriority.currentNice
        let run = try migrate(streams: 3, delay: 0, maxRounds: 3, pageThreadNice: 7)
        #expect(run.pageReaderNice.count == 3 && run.pageReaderNice.values.allSatisfy { $0 == 7 },
                "the three sender streams' threads read pages at nice 7: \(run.pageReaderNice)")
        #expect(run.streamThreadNice == [7, 7], "the destination's two extra streams")
        #expect(ThreadPriority.currentNice == baseline, "the calling thread keeps its own priority")
        #expect(run.selfCheckPassed)
    }

    @Test("the image digest kept incrementally over many rounds equals one computed from scratch over the image")
    func digestAfterManyRounds() throws {
        let run = try migrate(streams: 2, delay: 0, maxRounds: 12)
        #expect(run.report.rounds.count >= 6, "\(run.report.rendered())")
        #expect(run.sourceCopy == nil, "the source's copy is destroyed after DONE")
        #expect(run.report.cleanupSeconds != nil && run.report.sourceCopyLeft == nil)
        #expect(run.independentDigest?.hex == run.report.imageDigest, "incremental ≠ from scratch")
        #expect(run.selfCheckPassed)
    }

    @Test("after DONE, a source copy that cannot be destroyed: the migration is still reported committed and names the leftover, which stays paused, never resumed")
    func sourceCopyLeft() throws {
        let run = try migrate(streams: 1, delay: 0, maxRounds: 3, refuseDestroy: true)
        #expect(run.report.sourceCopyLeft?.contains("destroy refused by the test") == true)
        #expect(run.report.cleanupSeconds == nil)
        #expect(run.report.rendered().contains("the source's paused copy was NOT destroyed"))
        #expect(run.sourceCopy == .paused, "the copy stays paused: \(String(describing: run.sourceCopy))")
        #expect(run.selfCheckPassed, "the VM runs on the destination")
    }
}
