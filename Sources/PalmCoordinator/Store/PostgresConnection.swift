import CPostgres
import Foundation

/// One libpq connection (`PGconn`), used by one thread at a time (its owner holds a lock).
/// Statements are sent with `PQexecParams` in text format, arguments never interpolated into SQL.
final class PostgresConnection: StoreConnection {
    private var conn: OpaquePointer
    let url: String
    let connectTimeout: Int
    private var commitHooks: [@Sendable () -> Void] = []

    /// Connects; a malformed URL, an unreachable server and refused credentials are three
    /// different ``StoreError`` cases.
    init(url: String, connectTimeout: Int) throws {
        self.url = url
        self.connectTimeout = connectTimeout
        conn = try Self.connect(url: url, connectTimeout: connectTimeout)
    }

    deinit { PQfinish(conn) }

    static func validate(url: String) throws {
        guard url.hasPrefix("postgresql://") || url.hasPrefix("postgres://") else {
            throw StoreError.badURL("it must start with postgresql:// (e.g. postgresql://palm@db.example:5432/palm)")
        }
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(url, &error) else {
            let why = error.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unparsable"
            if let error { PQfreemem(error) }
            throw StoreError.badURL(why)
        }
        PQconninfoFree(options)
    }

    private static func connect(url: String, connectTimeout: Int) throws -> OpaquePointer {
        try validate(url: url)
        let keys = ["dbname", "connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"]
        let values = [url, String(connectTimeout), "palm-coordinator", "1", "5", "2", "3"]
        let c = withCStrings(keys) { k in withCStrings(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let c else { throw StoreError.unreachable("libpq could not allocate a connection") }
        guard PQstatus(c) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(c)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(c)
            if message.contains("password authentication failed") || message.contains("no password supplied")
                || message.contains("authentication failed") {
                throw StoreError.authenticationFailed(message)
            }
            throw StoreError.unreachable(message)
        }
        // Every statement is bounded: a stuck lock or server never holds a coordinator thread forever.
        let r = PQexec(c, "SET statement_timeout = '\(max(connectTimeout, 1) * 2)s'")
        PQclear(r)
        return c
    }

    /// Reconnects if the server closed the connection (restart, failover, network cut).
    func ensureConnected() throws {
        guard PQstatus(conn) != CONNECTION_OK else { return }
        let fresh = try Self.connect(url: url, connectTimeout: connectTimeout)
        PQfinish(conn)
        conn = fresh
    }

    var isConnected: Bool { PQstatus(conn) == CONNECTION_OK }

    /// Runs `BEGIN … COMMIT` around `body`, `ROLLBACK` when it throws; hooks run after the commit.
    func transaction<T>(begin: String, _ body: (PostgresConnection) throws -> T) throws -> T {
        try ensureConnected()
        commitHooks = []
        do {
            try execute(sql: begin, arguments: [])
        } catch StoreError.connectionLost {
            // The server dropped the connection since the last transaction (a restart, a
            // failover): nothing of this transaction ran yet, so reconnect once and begin again.
            try ensureConnected()
            try execute(sql: begin, arguments: [])
        }
        let result: T
        do {
            result = try body(self)
            try execute(sql: "COMMIT", arguments: [])
        } catch {
            if isConnected { PQclear(PQexec(conn, "ROLLBACK")) }
            commitHooks = []
            throw error
        }
        let hooks = commitHooks
        commitHooks = []
        for hook in hooks { hook() }
        return result
    }

    func afterCommit(_ body: @escaping @Sendable () -> Void) { commitHooks.append(body) }

    @discardableResult
    func execute(sql: String, arguments: [any SQLValueConvertible]) throws -> Int {
        let result = try run(sql, arguments)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    func fetchRows(sql: String, arguments: [any SQLValueConvertible]) throws -> [StoreRow] {
        let result = try run(sql, arguments)
        defer { PQclear(result) }
        let fields = Int(PQnfields(result)), count = Int(PQntuples(result))
        var columns: [String: Int] = [:]
        for f in 0..<fields {
            let name = String(cString: PQfname(result, Int32(f)))
            if columns[name] == nil { columns[name] = f }
        }
        var rows: [StoreRow] = []
        rows.reserveCapacity(count)
        for r in 0..<count {
            var values: [SQLValue] = []
            values.reserveCapacity(fields)
            for f in 0..<fields {
                values.append(PQgetisnull(result, Int32(r), Int32(f)) != 0 ? .null
                              : .text(String(cString: PQgetvalue(result, Int32(r), Int32(f)))))
            }
            rows.append(StoreRow(columns: columns, values: values))
        }
        return rows
    }

    private func run(_ sql: String, _ arguments: [any SQLValueConvertible]) throws -> OpaquePointer {
        let text = Self.numberPlaceholders(sql)
        let values = arguments.map { $0.sqlValue.text }
        let result: OpaquePointer? = withOptionalCStrings(values) { params in
            PQexecParams(conn, text, Int32(values.count), nil, params, nil, nil, 0)
        }
        guard let result else {
            throw StoreError.connectionLost(String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let message = String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            PQclear(result)
            if PQstatus(conn) != CONNECTION_OK { throw StoreError.connectionLost(message) }
            throw StoreError.queryFailed(sqlState: state, message: message)
        }
        return result
    }

    /// `?` → `$1`, `$2`, … outside string literals and quoted identifiers.
    static func numberPlaceholders(_ sql: String) -> String {
        var out = "", n = 0, quote: Character?
        for ch in sql {
            if let q = quote {
                if ch == q { quote = nil }
                out.append(ch)
            } else if ch == "'" || ch == "\"" {
                quote = ch
                out.append(ch)
            } else if ch == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(ch)
            }
        }
        return out
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { UnsafePointer(strdup($0)) } + [nil]
    defer { for p in copies { free(UnsafeMutablePointer(mutating: p)) } }
    return copies.withUnsafeBufferPointer { body($0.baseAddress!) }
}

private func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies: [UnsafePointer<CChar>?] = strings.map { $0.map { UnsafePointer(strdup($0)) } }
    defer { for p in copies { free(UnsafeMutablePointer(mutating: p)) } }
    return copies.withUnsafeBufferPointer { body($0.baseAddress) }
}
