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
        collect()
    }

    func collect() {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            // Fields after "(comm)": state is field 3; utime 14, stime 15, starttime 22, rss 24.
            let f = stat[stat.index(after: close)...].split(separator: " ").map(String.init)
            if f.count > 22, let u = Double(f[11]), let s = Double(f[12]), ticks > 0 {
                let total = (u + s) / ticks
                let delta = cpuSeen.withLockedValue { seen -> Double in
                    defer { seen = max(seen, total) }
                    return total - seen
                }
                if delta > 0 { cpu.increment(by: delta) }
                if let rssPages = Double(f[21]) { rss.set(rssPages * Double(sysconf(Int32(_SC_PAGESIZE)))) }
                if let startTicks = Double(f[19]), let boot = Self.bootTime { start.set(boot + startTicks / ticks) }
            }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") { fds.set(Double(entries.count)) }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maxFDs.set(Double(limit.rlim_cur)) }
    }

    private static let bootTime: Double? = {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }()
}

