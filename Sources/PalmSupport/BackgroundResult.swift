import Foundation

/// The result of one throwing closure that runs on a thread of its own from the moment this is
/// made, while the caller does other work; ``wait()`` collects its value or rethrows its error.
///
/// Guarantees: the closure runs exactly once, to its end; ``wait()`` returns only after it has
/// returned (nothing it does outlives a caller that waited), and may be called any number of times.
public final class BackgroundResult<Value>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    /// Written once by the thread before `done` is signalled; read only after waiting on it.
    private var result: Result<Value, any Error>?

    public init(name: String, _ body: @escaping @Sendable () throws -> Value) {
        let thread = Thread { [self] in
            result = Result { try body() }
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Blocks until the closure has returned; its value, or its error rethrown.
    public func wait() throws -> Value {
        done.wait()
        defer { done.signal() }
        guard let result else { preconditionFailure("signalled without a result") }
        return try result.get()
    }

    /// Waits at most `seconds` (0: only looks); the closure's outcome, or nil while it still runs.
    public func wait(seconds: Double) -> Result<Value, any Error>? {
        guard done.wait(timeout: .now() + max(0, seconds)) == .success else { return nil }
        defer { done.signal() }
        return result
    }

    /// True until the closure has returned.
    public var isRunning: Bool { wait(seconds: 0) == nil }
}
