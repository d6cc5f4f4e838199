import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A daemon's descriptor limit: raised (soft up to hard) to what its configured connection limits
/// need, with a warning naming both numbers when even the hard limit is lower.
public enum DescriptorLimit {
    public static func raise(toServe connections: Int, logger: Logger) {
        var lim = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0 else { return }
        let wanted = rlim_t(connections + 256)  // the database, the journal, the listener …
        if lim.rlim_cur < wanted {
            lim.rlim_cur = min(wanted, lim.rlim_max)
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        }
        if lim.rlim_cur < wanted {
            logger.warning("descriptor limit \(lim.rlim_cur) is below the \(wanted) the configured connection limits need (raise LimitNOFILE=)")
        }
    }
}
