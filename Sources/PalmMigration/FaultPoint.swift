import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Named points in the hand-off where fault-injection tests freeze an agent: when the environment
/// variable `PALM_TEST_STOP_AT` names the point, the agent logs it and stops itself (SIGSTOP), so a
/// test can kill it, kill its peer or cut the link at exactly that step. Unset in production,
/// where a fault point costs one string comparison.
public enum FaultPoint: String, Sendable {
    case precopy, stopAndCopy = "stop-and-copy", afterManifest = "after-manifest", afterReady = "after-ready",
         afterCommit = "after-commit"

    static let selected: String? = getenv("PALM_TEST_STOP_AT").map { String(cString: $0) }

    public func reached(_ logger: Logger) {
        guard FaultPoint.selected == rawValue else { return }
        logger.warning("stopping at fault point \(rawValue)")
        raise(SIGSTOP)
    }
}
