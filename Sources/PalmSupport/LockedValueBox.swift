import Foundation

/// A value guarded by a lock: every access goes through ``withLockedValue(_:)``, so no path can
/// touch it unlocked. palm's one lock primitive (as swift-certificates and swift-nio have theirs).
public final class LockedValueBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    /// Runs `body` with exclusive access to the value.
    @inline(__always)
    public func withLockedValue<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    /// Replaces the value with `newValue` and returns the one it held (a test-and-set when the
    /// value is a flag: `!box.exchange(true)` is true for the first caller only).
    @discardableResult
    public func exchange(_ newValue: Value) -> Value {
        withLockedValue { value in
            defer { value = newValue }
            return value
        }
    }

    /// A copy of the value.
    public var current: Value { withLockedValue { $0 } }
}
