/// One result row: column names (shared by every row of a result) and values.
///
/// `try row.get("name")` reads a column that must hold a value of the expected type and throws
/// ``StoreError/badColumn(_:expected:)`` otherwise; `row["name"] as T?` reads a nullable one.
public struct StoreRow: Sendable {
    let columns: [String: Int]
    let values: [SQLValue]

    init(columns: [String: Int], values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    /// The raw value of `column` (`.null` when the result has no such column).
    public func value(_ column: String) -> SQLValue {
        guard let i = columns[column], i < values.count else { return .null }
        return values[i]
    }

    public func get<T: SQLValueConvertible>(_ column: String) throws -> T {
        guard let v = T(sqlValue: value(column)) else { throw StoreError.badColumn(column, expected: "\(T.self)") }
        return v
    }

    /// The first column's value (nil: NULL or no column); another type throws, naming the column.
    func first<T: SQLValueConvertible>(_ type: T.Type) throws -> T? {
        guard let v = values.first, v != .null else { return nil }
        guard let t = T(sqlValue: v) else {
            throw StoreError.badColumn(columns.first { $0.value == 0 }?.key ?? "1", expected: "\(T.self)")
        }
        return t
    }

    /// The column's value, or nil when it is NULL, absent or of another type.
    public subscript<T: SQLValueConvertible>(_ column: String) -> T? {
        T(sqlValue: value(column))
    }
}
