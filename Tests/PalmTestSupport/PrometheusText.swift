import Foundation

/// A strict reader of Prometheus' text exposition format (version 0.0.4), for tests that scrape
/// `/metrics`: every line must be a `# HELP`, a `# TYPE`, or a sample with a valid metric name,
/// well-formed labels and a number; a name's TYPE comes before its samples and appears once;
/// histogram buckets are cumulative (non-decreasing in `le`) and the `+Inf` bucket equals `_count`.
public struct PrometheusText {
    public struct Sample: Equatable {
        public var name: String
        public var labels: [String: String]
        public var value: Double
    }

    public enum Malformed: Error, CustomStringConvertible {
        case line(Int, String, String)
        public var description: String {
            switch self { case let .line(n, text, why): return "line \(n): \(why): \(text)" }
        }
    }

    public let samples: [Sample]
    public let types: [String: String]

    public init(_ text: String) throws {
        var samples: [Sample] = []
        var types: [String: String] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let n = i + 1
            let l = String(line)
            if l.isEmpty { continue }
            if l.hasPrefix("#") {
                let parts = l.split(separator: " ", maxSplits: 3).map(String.init)
                guard parts.count >= 3, parts[0] == "#", ["HELP", "TYPE"].contains(parts[1]), Self.isName(parts[2]) else {
                    throw Malformed.line(n, l, "a comment that is neither HELP nor TYPE")
                }
                if parts[1] == "TYPE" {
                    guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                        throw Malformed.line(n, l, "an unknown type")
                    }
                    guard types[parts[2]] == nil else { throw Malformed.line(n, l, "a second TYPE for \(parts[2])") }
                    guard !samples.contains(where: { Self.family($0.name, types) == parts[2] }) else {
                        throw Malformed.line(n, l, "TYPE after samples of \(parts[2])")
                    }
                    types[parts[2]] = parts[3]
                }
                continue
            }
            samples.append(try Self.sample(l, line: n))
        }
        self.samples = samples
        self.types = types
        try checkHistograms()
    }

    /// The value of the sample with exactly these labels (`le` included for buckets), or nil.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    static func isName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, f == "_" || f == ":" || CharacterSet.letters.contains(f), f.isASCII else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0 == ":" || CharacterSet.alphanumerics.contains($0)) }
    }

    static func family(_ name: String, _ types: [String: String]) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if types[base] == "histogram" || types[base] == "summary" { return base }
        }
        return name
    }

    static func sample(_ l: String, line n: Int) throws -> Sample {
        var rest = Substring(l)
        let nameEnd = rest.firstIndex { $0 == "{" || $0 == " " } ?? rest.endIndex
        let name = String(rest[..<nameEnd])
        guard isName(name) else { throw Malformed.line(n, l, "a bad metric name") }
        rest = rest[nameEnd...]
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                guard let eq = rest.firstIndex(of: "=") else { throw Malformed.line(n, l, "a label without =") }
                let key = String(rest[..<eq])
                guard isName(key), !key.contains(":"), labels[key] == nil else { throw Malformed.line(n, l, "a bad or repeated label name") }
                rest = rest[rest.index(after: eq)...]
                guard rest.first == "\"" else { throw Malformed.line(n, l, "an unquoted label value") }
                rest = rest.dropFirst()
                var value = ""
                while true {
                    guard let c = rest.first else { throw Malformed.line(n, l, "an unterminated label value") }
                    rest = rest.dropFirst()
                    if c == "\"" { break }
                    if c == "\\" {
                        guard let e = rest.first, ["\\", "\"", "n"].contains(e) else { throw Malformed.line(n, l, "a bad escape") }
                        value.append(e == "n" ? "\n" : e)
                        rest = rest.dropFirst()
                    } else {
                        value.append(c)
                    }
                }
                labels[key] = value
                if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" { throw Malformed.line(n, l, "labels not separated by ,") }
            }
            rest = rest.dropFirst()
        }
        guard rest.first == " " else { throw Malformed.line(n, l, "no space before the value") }
        let fields = rest.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard (1...2).contains(fields.count), let value = Self.number(String(fields[0])) else { throw Malformed.line(n, l, "a bad value") }
        if fields.count == 2, Int64(fields[1]) == nil { throw Malformed.line(n, l, "a bad timestamp") }
        return Sample(name: name, labels: labels, value: value)
    }

    static func number(_ s: String) -> Double? {
        switch s {
        case "+Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(s)
        }
    }

    private func checkHistograms() throws {
        for (name, type) in types where type == "histogram" {
            let buckets = samples.filter { $0.name == name + "_bucket" }
            let series = Dictionary(grouping: buckets) { $0.labels.filter { $0.key != "le" } }
            for (labels, group) in series {
                let sorted = try group.map { s -> (Double, Double) in
                    guard let le = s.labels["le"].flatMap(Self.number) else { throw Malformed.line(0, name, "a bucket without le") }
                    return (le, s.value)
                }.sorted { $0.0 < $1.0 }
                guard sorted.last?.0 == .infinity else { throw Malformed.line(0, name, "no +Inf bucket") }
                for (a, b) in zip(sorted, sorted.dropFirst()) where b.1 < a.1 { throw Malformed.line(0, name, "buckets not cumulative") }
                guard value(name + "_count", labels) == sorted.last?.1 else { throw Malformed.line(0, name, "+Inf bucket ≠ _count") }
            }
        }
    }
}
