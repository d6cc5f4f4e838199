import Foundation
import PalmSupport
import Testing

/// The source agent opens the VM on a `BackgroundResult` while it connects: the work must really
/// run beside the caller, and its value or error must reach the caller whole.
@Suite("Background result")
struct BackgroundResultTests {
    @Test("the closure runs on its own thread while the caller waits for something only it provides")
    func runsBeside() throws {
        let caller = DispatchSemaphore(value: 0), body = DispatchSemaphore(value: 0)
        let result = BackgroundResult(name: "test") { () -> Int in
            caller.signal()                // the caller blocks until the body has started …
            body.wait()                    // … and the body until the caller went on: both ran at once
            return 42
        }
        caller.wait()
        body.signal()
        #expect(try result.wait() == 42)
        #expect(try result.wait() == 42, "waiting again returns the same value")
    }

    @Test("a bounded wait returns nil while the closure runs and its outcome once it returned")
    func boundedWait() throws {
        let release = DispatchSemaphore(value: 0)
        let result = BackgroundResult(name: "test") { () -> Int in
            release.wait()                 // cannot return before the test releases it
            return 5
        }
        #expect(result.wait(seconds: 0) == nil)
        #expect(result.wait(seconds: 0.05) == nil)
        #expect(result.isRunning)
        release.signal()
        #expect(try result.wait() == 5)
        #expect(try result.wait(seconds: 0)?.get() == 5)
        #expect(!result.isRunning)
    }

    @Test("an error thrown by the closure is rethrown to every wait")
    func errorReachesEveryWait() {
        struct Failure: Error, Equatable { let code: Int }
        let result = BackgroundResult<Int>(name: "test") { throw Failure(code: 7) }
        #expect(throws: Failure(code: 7)) { try result.wait() }
        #expect(throws: Failure(code: 7)) { try result.wait() }
    }
}
