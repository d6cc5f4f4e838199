#if canImport(Glibc)
import Glibc
#endif

/// Seconds on CLOCK_MONOTONIC, for durations that survive wall-clock changes.
public enum MonotonicClock {
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Nanoseconds on CLOCK_MONOTONIC (deadlines in integer arithmetic).
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The median duration of `samples` runs of `body`: what one run is expected to cost,
    /// steadier than a single timing (a cold cache or a preempted thread skews one sample, not
    /// the median). The last run's result is returned with it.
    public static func medianDuration<T>(of samples: Int, _ body: () throws -> T) rethrows -> (seconds: Double, result: T) {
        precondition(samples > 0)
        var times: [Double] = []
        var result: T?
        for _ in 0..<samples {
            let t0 = now()
            result = try body()
            times.append(now() - t0)
        }
        return (times.sorted()[samples / 2], result!)
    }

    /// CPU seconds (user + system) used by this process so far.
    public static func processCPUSeconds() -> Double {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
            + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
    }
}
