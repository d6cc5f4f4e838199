import Foundation

/// One value as the coordinator's SQL backends exchange it. PostgreSQL's text protocol delivers
/// every value as `.text`; the typed decoders below convert, so callers never see the difference.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)

    /// The value in PostgreSQL's text input format (nil for NULL).
    var text: String? {
        switch self {
        case .null: return nil
        case let .integer(v): return String(v)
        case let .real(v): return v.isFinite ? "\(v)" : (v.isNaN ? "NaN" : v > 0 ? "Infinity" : "-Infinity")
        case let .text(v): return v
        }
    }
}

/// A Swift type stored in one column: how it is bound as an argument and read back. Decoding
/// returns nil for NULL or for a value of another type (``StoreRow/get(_:)`` names the column).
public protocol SQLValueConvertible {
    var sqlValue: SQLValue { get }
    init?(sqlValue: SQLValue)
}

extension Int64: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(self) }
    public init?(sqlValue v: SQLValue) {
        switch v {
        case let .integer(i): self = i
        case let .real(d) where d.rounded() == d && abs(d) < 9.2e18: self = Int64(d)
        case let .text(s): guard let i = Int64(s) else { return nil }; self = i
        default: return nil
        }
    }
}

extension Int: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(Int64(self)) }
    public init?(sqlValue v: SQLValue) {
        guard let i = Int64(sqlValue: v), let n = Int(exactly: i) else { return nil }
        self = n
    }
}

extension UInt64: SQLValueConvertible {
    /// Stored as a signed 64-bit integer: values above Int64.max are clamped (no column holds one).
    public var sqlValue: SQLValue { .integer(Int64(clamping: self)) }
    public init?(sqlValue v: SQLValue) {
        guard let i = Int64(sqlValue: v), i >= 0 else { return nil }
        self = UInt64(i)
    }
}

extension UInt32: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(Int64(self)) }
    public init?(sqlValue v: SQLValue) {
        guard let i = Int64(sqlValue: v), let n = UInt32(exactly: i) else { return nil }
        self = n
    }
}

extension Double: SQLValueConvertible {
    public var sqlValue: SQLValue { .real(self) }
    public init?(sqlValue v: SQLValue) {
        switch v {
        case let .real(d): self = d
        case let .integer(i): self = Double(i)
        case let .text(s): guard let d = Double(s) else { return nil }; self = d
        default: return nil
        }
    }
}

extension String: SQLValueConvertible {
    public var sqlValue: SQLValue { .text(self) }
    public init?(sqlValue v: SQLValue) {
        guard case let .text(s) = v else { return nil }
        self = s
    }
}

/// Booleans are stored as the integers 0 and 1 on both backends (so SQL compares them with `= 1`
/// everywhere); PostgreSQL's own boolean results (`EXISTS`) arrive as `t` / `f`.
extension Bool: SQLValueConvertible {
    public var sqlValue: SQLValue { .integer(self ? 1 : 0) }
    public init?(sqlValue v: SQLValue) {
        switch v {
        case let .integer(i): self = i != 0
        case let .real(d): self = d != 0
        case .text("t"), .text("true"), .text("1"): self = true
        case .text("f"), .text("false"), .text("0"): self = false
        default: return nil
        }
    }
}

extension Optional: SQLValueConvertible where Wrapped: SQLValueConvertible {
    public var sqlValue: SQLValue { map(\.sqlValue) ?? .null }
    /// NULL decodes to `.some(nil)`; a value of another type fails.
    public init?(sqlValue v: SQLValue) {
        if case .null = v { self = .none; return }
        guard let w = Wrapped(sqlValue: v) else { return nil }
        self = .some(w)
    }
}
