@testable import PalmXenDriver
import PalmHypervisor
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Toolstack child processes")
struct ToolProcessTests {
    /// Polls `isRunning` (which reaps the child) until the child has exited, at most 30 s.
    private func reaped(_ p: ToolProcess) -> Bool {
        let deadline = ToolProcess.now() + 30
        while p.isRunning {
            if ToolProcess.now() > deadline { return false }
            usleep(1_000)
        }
        return true
    }

    @Test("a child reaped by isRunning still reports its own exit code and output to wait")
    func waitAfterReaped() throws {
        let failing = try ToolProcess(["sh", "-c", "echo no such domain; exit 3"])
        #expect(reaped(failing))
        do {
            try failing.wait(timeout: 5)
            Issue.record("a child that exited 3 was reported as a success")
        } catch let HypervisorError.guestFailed(message) {
            #expect(message.contains("exited 3") && message.contains("no such domain"), "\(message)")
        }

        let succeeding = try ToolProcess(["sh", "-c", "echo done"])
        #expect(reaped(succeeding))
        #expect(try succeeding.wait(timeout: 5).contains("done"))
    }

    @Test("a child that outlives its timeout is killed and named")
    func timeout() throws {
        let p = try ToolProcess(["sleep", "30"])
        #expect(throws: HypervisorError.guestFailed("`sleep 30` did not finish within 0 s")) { try p.wait(timeout: 0.2) }
        #expect(!p.isRunning)
    }
}
