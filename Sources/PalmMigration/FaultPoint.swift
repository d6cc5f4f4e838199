import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Named points in the hand-off where fault-injection tests freeze an agent, so a test can kill
/// it, kill its peer or cut the link at exactly that step.
public enum FaultPoint: String, Sendable, CaseIterable {
    case precopy, stopAndCopy = "stop-and-copy", afterManifest = "after-manifest", afterReady = "after-ready",
         afterCommit = "after-commit"
}

/// The one seam through which tests reach into the engine: which ``FaultPoint`` (if any) stops
/// the agent. The engine only ever receives it as a value — ``disabled`` unless its caller passes
/// another — and only the agents build one, from the environment variable `PALM_TEST_STOP_AT`
/// (``fromEnvironment(_:)``: palm-dest once at start, palm-source for each migration it runs).
/// Disabled, a fault point costs one comparison.
public struct FaultInjection: Sendable, Equatable {
    /// The environment variable the agents read.
    public static let variable = "PALM_TEST_STOP_AT"
    /// Where the agent stops itself (SIGSTOP); nil: nowhere.
    public let stopAt: FaultPoint?

    public static let disabled = FaultInjection(stopAt: nil)

    public init(stopAt: FaultPoint?) { self.stopAt = stopAt }

    /// Armed at the point `PALM_TEST_STOP_AT` names; disabled when it is unset or empty. A name
    /// that is no fault point is an error naming the variable (a typo must not silently test nothing).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> FaultInjection {
        guard let name = environment[variable], !name.isEmpty else { return .disabled }
        guard let point = FaultPoint(rawValue: name) else {
            throw MigrationError.local("\(variable)=\(name) is not a fault point (\(FaultPoint.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return FaultInjection(stopAt: point)
    }

    /// Stops the process here when armed at `point`.
    public func reached(_ point: FaultPoint, _ logger: Logger) {
        guard stopAt == point else { return }
        logger.warning("stopping at fault point \(point.rawValue)")
        raise(SIGSTOP)
    }
}
