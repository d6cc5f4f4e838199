import Foundation
import PalmMetrics
import Testing

/// The Grafana dashboard and the README's alert rules query only what palm exports: a renamed or
/// dropped metric breaks this test instead of an operator's dashboard.
@Suite("Dashboard and alert rules")
struct DashboardTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The metric names a PromQL expression uses (histogram series mapped to their histogram).
    static func metrics(in expr: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: "\\b(palm|process)_[a-z_]+\\b")
        let names = regex.matches(in: expr, range: NSRange(expr.startIndex..., in: expr)).compactMap { Range($0.range, in: expr).map { String(expr[$0]) } }
        return names.map { name in
            for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
                let base = String(name.dropLast(suffix.count))
                if MetricName(rawValue: base)?.buckets != nil { return base }
            }
            return name
        }
    }

    static func exprs(_ value: Any) -> [String] {
        switch value {
        case let d as [String: Any]: return d.flatMap { key, v in key == "expr" ? [v as? String ?? ""] : exprs(v) }
        case let a as [Any]: return a.flatMap(exprs)
        default: return []
        }
    }

    @Test("every query of deploy/grafana/palm.json names metrics palm exports, and every panel has one")
    func dashboard() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("deploy/grafana/palm.json"))
        let json = try JSONSerialization.jsonObject(with: data)
        let panels = try #require((json as? [String: Any])?["panels"] as? [[String: Any]])
        #expect(panels.count >= 6)
        let known = Set(MetricName.allCases.map(\.rawValue))
        for panel in panels {
            let queries = Self.exprs(panel)
            #expect(!queries.isEmpty, "panel '\(panel["title"] ?? "?")' has no query")
            for q in queries {
                let used = Self.metrics(in: q)
                #expect(!used.isEmpty, "'\(q)' names no palm metric")
                for m in used { #expect(known.contains(m), "'\(q)' queries \(m), which palm does not export") }
            }
        }
        // The issue's panels: outcomes, downtime percentiles, throughput, refusals, hosts by state.
        let all = Self.exprs(json).joined(separator: "\n")
        for needed in ["palm_migrations_committed_total", "palm_migrations_aborted_total", "palm_migration_downtime_seconds_bucket",
                       "palm_migration_bytes_total", "palm_refusals_total", "palm_coordinator_hosts"] {
            #expect(all.contains(needed), "the dashboard does not show \(needed)")
        }
    }

    @Test("the README's example alert rules name metrics palm exports")
    func alertRules() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let exprs = readme.split(separator: "\n").compactMap { line -> String? in
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.hasPrefix("expr:") ? String(t.dropFirst(5)) : nil
        }
        #expect(exprs.count >= 5, "the README's Monitoring section lists its alert rules")
        let known = Set(MetricName.allCases.map(\.rawValue))
        for q in exprs {
            let used = Self.metrics(in: q)
            #expect(!used.isEmpty, "'\(q)' names no palm metric")
            for m in used { #expect(known.contains(m), "'\(q)' queries \(m), which palm does not export") }
        }
    }
}
