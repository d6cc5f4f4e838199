/// Why the coordinator's state store failed; every case names the failure an operator can act on.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// `[state] backend` names no backend palm has.
    case unknownBackend(String)
    /// The PostgreSQL connection URL is malformed (the message says how; the password is never shown).
    case badURL(String)
    /// The database server could not be reached (refused, no route, timeout).
    case unreachable(String)
    /// The server refused the credentials.
    case authenticationFailed(String)
    /// The connection was lost; the statement may not have run (the next transaction reconnects).
    case connectionLost(String)
    /// A statement failed (SQLSTATE and the server's message).
    case queryFailed(sqlState: String, message: String)
    /// A column that must hold a value holds NULL or a value of another type.
    case badColumn(String, expected: String)
    /// The database's schema is newer than this coordinator knows (a later version wrote it).
    case schemaTooNew(applied: [String])
    /// This coordinator does not hold the leader lease (PostgreSQL): it may not write.
    case notLeader(leader: String?)

    public var description: String {
        switch self {
        case let .unknownBackend(b): return "unknown state backend '\(b)' (sqlite or postgresql)"
        case let .badURL(why): return "bad PostgreSQL URL: \(why)"
        case let .unreachable(why): return "database unreachable: \(why)"
        case let .authenticationFailed(why): return "database authentication failed: \(why)"
        case let .connectionLost(why): return "database connection lost: \(why)"
        case let .queryFailed(state, message): return "database statement failed (SQLSTATE \(state)): \(message)"
        case let .badColumn(c, t): return "database column '\(c)' does not hold a \(t)"
        case let .schemaTooNew(applied): return "the database schema is newer than this coordinator (applied: \(applied.joined(separator: ", ")))"
        case let .notLeader(leader): return "this coordinator is not the leader" + (leader.map { "; the leader is \($0)" } ?? "")
        }
    }
}
