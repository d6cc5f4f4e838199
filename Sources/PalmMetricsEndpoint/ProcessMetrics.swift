import Foundation
import PalmSupport
import Prometheus

/// The standard `process_*` metrics, read from /proc/self at each scrape: CPU seconds, resident
/// memory, open and maximum file descriptors, start time.
final class ProcessMetrics: Sendable {
    private let cpu: Prometheus.Counter
    /// The CPU seconds already counted, so each scrape adds only what was spent since.
    private let cpuSeen = LockedValueBox(0.0)
    private let rss: Prometheus.Gauge
    private let fds: Prometheus.Gauge
    private let maxFDs: Prometheus.Gauge
    private let start: Prometheus.Gauge

    init(registry: PrometheusCollectorRegistry) {
        cpu = registry.makeCounter(descriptor: .init(namespace: "process", metricName: "cpu_seconds", unitName: "total", helpText: "User and system CPU time spent, seconds."))
        rss = registry.makeGauge(descriptor: .init(namespace: "process", metricName: "resident_memory", unitName: "bytes", helpText: "Resident memory size, bytes."))
        fds = registry.makeGauge(descriptor: .init(namespace: "process", metricName: "open", unitName: "fds", helpText: "Open file descriptors."))
        maxFDs = registry.makeGauge(descriptor: .init(namespace: "process", metricName: "max", unitName: "fds", helpText: "The open file descriptor limit."))
        start = registry.makeGauge(descriptor: .init(namespace: "process", metricName: "start_time", unitName: "seconds", helpText: "Start time since the epoch, seconds."))
        start.set(Self.startTime() ?? Date().timeIntervalSince1970)  // fixed for the process's life
        collect()
    }

    func collect() {
        let total = MonotonicClock.processCPUSeconds()
        let delta = cpuSeen.withLockedValue { seen -> Double in
            defer { seen = max(seen, total) }
            return total - seen
        }
        if delta > 0 { cpu.increment(by: delta) }
        // statm: size resident shared … (pages).
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let resident = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
            rss.set(resident * Double(sysconf(Int32(_SC_PAGESIZE))))
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") { fds.set(Double(entries.count)) }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(Double(limit.rlim_cur)) }
    }

    /// Boot time (/proc/stat btime) plus the process's start in clock ticks (/proc/self/stat field 22).
    private static func startTime() -> Double? {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard ticks > 0, let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let close = stat.lastIndex(of: ")"),
              let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let btime = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(btime.dropFirst(6).trimmingCharacters(in: .whitespaces)) else { return nil }
        // Fields after "(comm)" start at field 3 (state); starttime is field 22.
        let f = stat[stat.index(after: close)...].split(separator: " ")
        guard f.count > 19, let startTicks = Double(f[19]) else { return nil }
        return boot + startTicks / ticks
    }
}
