import Foundation
import PalmHypervisor
import PalmMigration
import PalmTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum Fault: String, CaseIterable, Sendable { case killSource = "kill -9 source", killDest = "kill -9 destination", cutLink = "cut the link" }

struct FaultCase: CustomTestStringConvertible, Sendable {
    let fault: Fault
    let point: FaultPoint
    var testDescription: String { "\(fault.rawValue) at \(point.rawValue)" }
    /// Where the VM must run afterwards; nil when either side is correct (a cut link races COMMIT).
    var expectedOnDestination: Bool? {
        guard point == .afterCommit else { return false }
        return fault == .cutLink ? nil : true
    }
}

let faultCases: [FaultCase] = Fault.allCases.flatMap { f in
    [FaultPoint.precopy, .stopAndCopy, .afterManifest, .afterReady, .afterCommit].map { FaultCase(fault: f, point: $0) }
}

/// Kill either agent, or cut the connections, at each hand-off step of a migration on four page
/// streams; after the agents' own recovery (a restarted destination, `palm-source recover`)
/// exactly one copy runs and passes its self-check, on the side the commit rule says.
@Suite("Hand-off under faults", .serialized)
struct HandoffFaultTests {
    @Test("exactly one copy survives", arguments: faultCases)
    func oneCopySurvives(_ c: FaultCase) throws {
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        let stop = ["PALM_TEST_STOP_AT": c.point.rawValue]
        try cluster.startDest(environment: c.fault == .killDest ? stop : [:])
        try cluster.createVM("vm", memory: "32M", rate: 2000, pattern: "hot-set", workingSet: "4M")
        let marker = "stopping at fault point \(c.point.rawValue)"
        let streams = ["--streams", "4"]

        switch c.fault {
        case .killSource:
            let m = try cluster.startMigration("vm", extra: streams, environment: stop)
            #expect(m.waitFor(marker), "source: \(m.stderrSoFar)")
            kill(m.process.processIdentifier, SIGKILL)
            _ = m.finish()
            let r = try cluster.recoverSource()
            #expect(r.status == 0, "recover: \(r.stderr)")
        case .killDest:
            let m = try cluster.startMigration("vm", extra: streams)
            #expect(cluster.waitForDestLog(marker))
            cluster.killDest()
            try cluster.startDest(samePort: true)  // systemd restarts it
            _ = m.finish()
        case .cutLink:
            let proxy = try LinkProxy(upstreamPort: cluster.destPort)
            let m = try cluster.startMigration("vm", port: proxy.port, extra: streams, environment: stop)
            #expect(m.waitFor(marker), "source: \(m.stderrSoFar)")
            #expect(SimCluster.waitUntilStopped(m.process.processIdentifier))
            proxy.sever()
            kill(m.process.processIdentifier, SIGCONT)
            _ = m.finish()
            withExtendedLifetime(proxy) {}
        }

        let copies = try cluster.runningCopies("vm")
        #expect(copies.source != copies.dest, "exactly one copy must run: \(copies)\n--- dest ---\n\(cluster.destLog)")
        if let onDest = c.expectedOnDestination {
            #expect(copies.dest == onDest, "the VM runs on the \(copies.dest ? "destination" : "source")")
        }
        let hv = copies.dest ? try cluster.destHypervisor() : try cluster.sourceHypervisor()
        #expect(try hv.awaitSelfCheck(vm: "vm").passed)
        // Nothing is left in doubt on the source.
        let journal = cluster.dir + "/source-state/migrations"
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: journal)) ?? []).isEmpty)
    }

    @Test("recover leaves a migration alone while its agent still runs it (no unpausing mid stop-and-copy)")
    func recoverSkipsLiveMigration() throws {
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        try cluster.startDest()
        try cluster.createVM("vm", memory: "32M", rate: 2000)
        let m = try cluster.startMigration("vm", environment: ["PALM_TEST_STOP_AT": FaultPoint.stopAndCopy.rawValue])
        #expect(m.waitFor("stopping at fault point stop-and-copy"), "source: \(m.stderrSoFar)")
        #expect(SimCluster.waitUntilStopped(m.process.processIdentifier))
        let r = try cluster.recoverSource()
        #expect(r.status == 0)
        #expect(r.stderr.contains("left alone"), "recover: \(r.stderr)")
        kill(m.process.processIdentifier, SIGCONT)
        let (status, _, err) = m.finish()
        #expect(status == 0, "the migration completes: \(err)")
        #expect(try cluster.runningCopies("vm") == (source: false, dest: true))
        #expect(try cluster.destHypervisor().awaitSelfCheck(vm: "vm").passed)
    }
}
