import Foundation
import Logging
@testable import PalmAgent
import PalmHypervisor
import PalmMigration
import PalmTestSupport
import PalmWire
import Testing

/// palm-dest's start-up recovery decides from its ledger whether a half-received VM is resumed or
/// thrown away. A VM that came to this host before, left, and is coming back has several records:
/// only the newest may decide (found by the random fault soak: an older `committed` record made a
/// restarted palm-dest resume a VM whose current migration had aborted — the VM ran twice).
@Suite("palm-dest start-up recovery", .serialized)
struct DestinationRecoveryTests {
    struct Host {
        let sim: SimHypervisor
        let ledger: DestinationLedger
        let dir: String
        let logger = Logger(label: "recovery-test")

        init() throws {
            let id = UUID().uuidString.prefix(8)
            dir = NSTemporaryDirectory() + "palm-recovery-\(id)"
            sim = try SimHypervisor(root: "/dev/shm/palm-recovery-\(id)", memoryLimitBytes: 1 << 30, guestBinary: SimCluster.bin("palm-simguest"))
            ledger = try DestinationLedger(directory: dir + "/ledger")
        }

        func incoming(_ vm: String) throws {
            _ = try sim.createIncoming(config: VMConfig(name: vm, mode: .preCopy, pageSize: 4096, pageCount: 256, vcpus: 1,
                                                        hypervisor: "sim", platform: []))
        }

        func recover() { DestinationServer.recover(hypervisor: sim, ledger: ledger, logger: logger) }

        func cleanUp() {
            for vm in (try? sim.listVMs()) ?? [] { try? sim.destroy(vm: vm.name) }
            for vm in sim.incomingVMs() { sim.discardIncoming(vm: vm) }
            try? FileManager.default.removeItem(atPath: sim.root)
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    @Test("a VM that was committed here before and comes back: the interrupted return is discarded, not resumed")
    func olderCommitDoesNotDecide() throws {
        let host = try Host()
        defer { host.cleanUp() }
        try host.ledger.recordIncoming(id: "first-visit", vm: "web", source: "aa")
        try host.ledger.commit(id: "first-visit")
        // The VM left again; now it comes back and palm-dest dies mid-transfer.
        try host.ledger.recordIncoming(id: "second-visit", vm: "web", source: "bb")
        try host.incoming("web")
        host.recover()
        #expect(host.sim.incomingVMs().isEmpty)
        #expect(host.sim.guestPID(vm: "web") == nil, "the VM must not run here: its source resumes it")
        #expect(host.ledger.record("second-visit")?["state"] == "aborted")
        #expect(host.ledger.record("first-visit")?["state"] == "committed")
    }

    @Test("the newest record decides even across a restart of the ledger, and a committed return is resumed")
    func committedReturnResumes() throws {
        let host = try Host()
        defer { host.cleanUp() }
        try host.ledger.recordIncoming(id: "first-visit", vm: "db", source: "aa")
        _ = try host.ledger.resolve(id: "first-visit")  // aborted
        // A new process opens the same directory: ordinals continue past what is on disk.
        let reopened = try DestinationLedger(directory: host.dir + "/ledger")
        try reopened.recordIncoming(id: "second-visit", vm: "db", source: "bb")
        #expect(DestinationLedger.opened(try #require(reopened.record("second-visit")))
            > DestinationLedger.opened(try #require(reopened.record("first-visit"))))
        try reopened.commit(id: "second-visit")
        try host.incoming("db")
        DestinationServer.recover(hypervisor: host.sim, ledger: reopened, logger: host.logger)
        #expect(host.sim.incomingVMs().isEmpty)
        #expect(host.sim.guestPID(vm: "db") != nil, "the committed migration's VM resumes here")
    }

    @Test("an incoming VM the ledger never recorded is discarded")
    func unrecordedIsDiscarded() throws {
        let host = try Host()
        defer { host.cleanUp() }
        try host.incoming("ghost")
        host.recover()
        #expect(host.sim.incomingVMs().isEmpty)
        #expect(host.sim.guestPID(vm: "ghost") == nil)
    }
}
