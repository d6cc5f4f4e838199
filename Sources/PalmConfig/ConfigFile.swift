import Foundation
#if canImport(Glibc)
import Glibc
#endif
import PalmSupport
import PalmWire
import TOMLKit

/// A configuration problem, always naming the file and, where there is one, the key.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case syntax(file: String, line: Int, column: Int, message: String)
    case unknownKey(file: String, key: String)
    case missingKey(file: String, key: String)
    case wrongType(file: String, key: String, expected: String)
    case invalidValue(file: String, key: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(f, r): return "\(f): cannot read: \(r)"
        case let .syntax(f, l, c, m): return "\(f):\(l):\(c): TOML syntax error: \(m)"
        case let .unknownKey(f, k): return "\(f): unknown key '\(k)'"
        case let .missingKey(f, k): return "\(f): required key '\(k)' is missing"
        case let .wrongType(f, k, e): return "\(f): key '\(k)' must be \(e)"
        case let .invalidValue(f, k, r): return "\(f): key '\(k)': \(r)"
        }
    }
}

/// Typed, checked access to a TOML file. Every key read is recorded so `finish()` can refuse keys
/// the program does not know (a typo must not silently fall back to a default).
public final class ConfigFile {
    public let path: String
    let root: TOMLTable
    private var used: Set<String> = []

    /// The largest configuration file read (a configuration is a few KiB; anything near this is not one).
    public static let maxSize = 1 << 20

    public init(path: String) throws {
        self.path = path
        let text = try ConfigFile.read(path)
        if let (line, column) = TOMLHeaderCheck.firstBadHeader(in: text) {
            throw ConfigError.syntax(file: path, line: line, column: column, message: "a table header must start with a key")
        }
        do { root = try TOMLTable(string: text) } catch let e as TOMLParseError {
            throw ConfigError.syntax(file: path, line: e.source.begin.line, column: e.source.begin.column, message: e.description)
        }
    }

    private func value(_ key: String) -> TOMLValueConvertible? {
        used.insert(key)
        let parts = key.split(separator: ".").map(String.init)
        var table: TOMLTable? = root
        for part in parts.dropLast() { table = table?[part]?.table }
        return table?[parts.last ?? key]
    }

    public func string(_ key: String, default def: String? = nil) throws -> String {
        guard let v = value(key) else {
            if let def { return def }
            throw ConfigError.missingKey(file: path, key: key)
        }
        guard let s = v.string else { throw ConfigError.wrongType(file: path, key: key, expected: "a string") }
        return s
    }

    public func optionalString(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw ConfigError.wrongType(file: path, key: key, expected: "a string") }
        return s.isEmpty ? nil : s
    }

    public func stringArray(_ key: String) throws -> [String] {
        guard let v = value(key) else { return [] }
        guard let array = v.array else { throw ConfigError.wrongType(file: path, key: key, expected: "an array of strings") }
        return try array.map {
            guard let s = $0.string else { throw ConfigError.wrongType(file: path, key: key, expected: "an array of strings") }
            return s
        }
    }

    /// An array of integers, each within `range`; `def` when the key is absent.
    public func intArray(_ key: String, default def: [Int], range: ClosedRange<Int>) throws -> [Int] {
        guard let v = value(key) else { return def }
        guard let array = v.array else { throw ConfigError.wrongType(file: path, key: key, expected: "an array of integers") }
        return try array.map {
            guard let i = $0.int else { throw ConfigError.wrongType(file: path, key: key, expected: "an array of integers") }
            guard range.contains(i) else {
                throw ConfigError.invalidValue(file: path, key: key, reason: "\(i) is outside \(range.lowerBound)…\(range.upperBound)")
            }
            return i
        }
    }

    /// A value that may be one string (`single`) or a list (`list`), never both; at most `limit`
    /// entries. Empty when neither key is set.
    public func oneOrMany(_ single: String, _ list: String, limit: Int) throws -> [String] {
        let one = try optionalString(single)
        let many = try stringArray(list)
        if one != nil && !many.isEmpty {
            throw ConfigError.invalidValue(file: path, key: list, reason: "give \(single) or \(list), not both")
        }
        guard many.count <= limit else { throw ConfigError.invalidValue(file: path, key: list, reason: "at most \(limit) entries") }
        return one.map { [$0] } ?? many
    }

    public func int(_ key: String, default def: Int, range: ClosedRange<Int>) throws -> Int {
        guard let v = value(key) else { return def }
        guard let i = v.int else { throw ConfigError.wrongType(file: path, key: key, expected: "an integer") }
        guard range.contains(i) else {
            throw ConfigError.invalidValue(file: path, key: key, reason: "\(i) is outside \(range.lowerBound)…\(range.upperBound)")
        }
        return i
    }

    public func double(_ key: String, default def: Double, range: ClosedRange<Double>) throws -> Double {
        guard let v = value(key) else { return def }
        guard let d = v.double ?? v.int.map(Double.init) else { throw ConfigError.wrongType(file: path, key: key, expected: "a number") }
        guard range.contains(d) else {
            throw ConfigError.invalidValue(file: path, key: key, reason: "\(d) is outside \(range.lowerBound)…\(range.upperBound)")
        }
        return d
    }

    /// A size such as "16G", "512M" or a number of bytes.
    public func bytes(_ key: String, default def: UInt64) throws -> UInt64 {
        guard let v = value(key) else { return def }
        if let i = v.int, i > 0 { return UInt64(i) }
        guard let s = v.string, let b = ByteSize.parse(s) else {
            throw ConfigError.invalidValue(file: path, key: key, reason: "expected a size like \"512M\" or \"16G\"")
        }
        return b
    }

    /// A size such as "256K" that must lie in `range` (a buffer or message limit, held as `Int`);
    /// outside it, a named error giving the range. Checked before it is converted, so no size
    /// overflows.
    public func bytes(_ key: String, default def: Int, range: ClosedRange<Int>) throws -> Int {
        let b = try bytes(key, default: UInt64(def))
        guard b >= UInt64(range.lowerBound), b <= UInt64(range.upperBound) else {
            let bounds = "\(ByteSize.format(UInt64(range.lowerBound)))…\(ByteSize.format(UInt64(range.upperBound)))"
            throw ConfigError.invalidValue(file: path, key: key, reason: "\(b) bytes is outside \(bounds)")
        }
        return Int(b)
    }

    public func bool(_ key: String, default def: Bool) throws -> Bool {
        guard let v = value(key) else { return def }
        guard let b = v.bool else { throw ConfigError.wrongType(file: path, key: key, expected: "true or false") }
        return b
    }

    public func oneOf(_ key: String, _ choices: [String], default def: String) throws -> String {
        let s = try string(key, default: def)
        guard choices.contains(s) else {
            throw ConfigError.invalidValue(file: path, key: key, reason: "'\(s)' is not one of \(choices.joined(separator: ", "))")
        }
        return s
    }

    /// Refuses any key that was never read.
    public func finish() throws {
        func walk(_ table: TOMLTable, _ prefix: String) throws {
            for key in table.keys.sorted() {
                let full = prefix.isEmpty ? key : "\(prefix).\(key)"
                if let sub = table[key]?.table {
                    try walk(sub, full)
                } else if !used.contains(full) {
                    throw ConfigError.unknownKey(file: path, key: full)
                }
            }
        }
        try walk(root, "")
    }
}

extension ConfigFile {
    /// Reads at most ``maxSize`` bytes and decodes them as UTF-8, naming what is wrong.
    static func read(_ path: String) throws -> String {
        let bytes: [UInt8]
        do { bytes = try BoundedFile.read(path, limit: maxSize) } catch let failure as BoundedFile.Failure {
            switch failure {
            case let .unreadable(_, reason, _): throw ConfigError.unreadable(file: path, reason: reason)
            case .tooLarge: throw ConfigError.unreadable(file: path, reason: "larger than \(maxSize >> 20) MiB: not a configuration file")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError.unreadable(file: path, reason: "not UTF-8 text")
        }
        return text
    }
}
