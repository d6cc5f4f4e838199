import Foundation
import PalmSupport
import Testing

/// How a page thread yields the CPU: its own nice value only, only upwards.
@Suite("Thread priority")
struct ThreadPriorityTests {
    /// Runs `body` on a new thread and returns what it returned.
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let result = BackgroundResult(name: "palm-priority-test") { body() }
        return try! result.wait()
    }

    @Test("yield raises the calling thread's nice value and no other thread's")
    func onlyTheCallingThread() {
        let before = ThreadPriority.currentNice
        let seen = Self.onThread { () -> Int in
            ThreadPriority.yield(nice: before + 5)
            return ThreadPriority.currentNice
        }
        #expect(seen == before + 5)
        #expect(ThreadPriority.currentNice == before)
    }

    @Test("yield never lowers a nice value, and refuses one outside 0-19")
    func onlyUpwards() {
        let (raised, kept, refused) = Self.onThread { () -> (Int, Int, Bool) in
            ThreadPriority.yield(nice: 12)
            let raised = ThreadPriority.currentNice
            ThreadPriority.yield(nice: 3)
            return (raised, ThreadPriority.currentNice, ThreadPriority.yield(nice: 25))
        }
        #expect(raised == 12 && kept == 12)
        #expect(!refused)
    }
}
