import Foundation
import PalmSupport

/// A private PostgreSQL cluster for the tests: Debian's server binaries, `initdb` into a temporary
/// directory (as the `postgres` system user: initdb refuses root), password (SCRAM) authentication
/// on a free loopback port, stopped and removed when the test process exits. One per test
/// process; each test gets a fresh database of its own (``newDatabaseURL()``).
///
/// `PALM_TEST_POSTGRES_URL` (an admin URL of a server someone else runs) replaces it.
public final class PostgresTestServer: @unchecked Sendable {
    public static let user = "palm", password = "palm-test-password"

    /// The shared server, started on first use (the error says why it could not be).
    public static let shared: Result<PostgresTestServer, Error> = Result { try PostgresTestServer(allowExternal: true) }

    /// A server of its own (for a test that restarts it), stopped at exit like the shared one.
    public static func privateServer() throws -> PostgresTestServer { try PostgresTestServer(allowExternal: false) }

    public let host = "127.0.0.1"
    public let port: Int
    private let bin: String
    private let external: String?
    private let counter = NSLock()
    private var databases = 0

    private static let started = LockedValueBox<[String]>([])
    private nonisolated(unsafe) static var binDirectory: String?
    private let dataDirectory: String
    private let owner: String

    /// The URL of the cluster's `postgres` database (administration).
    public var adminURL: String { external ?? url(database: "postgres") }

    public func url(database: String, password: String = PostgresTestServer.password) -> String {
        "postgresql://\(Self.user):\(password)@\(host):\(port)/\(database)"
    }

    private init(allowExternal: Bool) throws {
        bin = try Self.serverBinaries()
        if allowExternal, let given = ProcessInfo.processInfo.environment["PALM_TEST_POSTGRES_URL"], !given.isEmpty {
            external = given
            port = URLComponents(string: given)?.port ?? 5432
            dataDirectory = ""
            owner = ""
            return
        }
        external = nil
        let dir = "/tmp/palm-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        owner = try ProcessRunner.run("/usr/bin/id", ["-u", "postgres"]).status == 0 ? "postgres" : "nobody"
        dataDirectory = dir + "/data"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "\(Self.password)\n".write(toFile: dir + "/pw", atomically: true, encoding: .utf8)
        _ = try ProcessRunner.run("/bin/chown", ["-R", owner, dir])
        Self.binDirectory = bin
        let initdb = try ProcessRunner.run("/usr/sbin/runuser", ["-u", owner, "--", bin + "/initdb", "-D", dir + "/data", "-U", Self.user,
                                                        "--pwfile", dir + "/pw", "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync"])
        guard initdb.status == 0 else { throw Failure.initdb(initdb.stderr) }
        var lastError = ""
        for _ in 0..<3 {
            let p = try Self.freePort()
            let start = try ProcessRunner.run("/usr/sbin/runuser", [
                "-u", owner, "--", bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/log", "-w", "-t", "60", "start",
                "-o", "-c listen_addresses=127.0.0.1 -p \(p) -k \(dir) -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            ])
            if start.status == 0 {
                port = p
                let first = Self.started.withLockedValue { list in list.append(dir + "/data"); return list.count == 1 }
                if first { atexit { PostgresTestServer.stopAll() } }
                return
            }
            lastError = start.stderr + ((try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? "")
        }
        throw Failure.start(lastError)
    }

    public enum Failure: Error, CustomStringConvertible {
        case noServer, initdb(String), start(String), createdb(String)
        public var description: String {
            switch self {
            case .noServer: return "no PostgreSQL server binaries under /usr/lib/postgresql (scripts/test.sh installs postgresql)"
            case let .initdb(e): return "initdb failed: \(e)"
            case let .start(e): return "pg_ctl start failed: \(e)"
            case let .createdb(e): return "createdb failed: \(e)"
            }
        }
    }

    /// A new, empty database; its URL.
    public func newDatabaseURL() throws -> String {
        let name = counter.withLock { databases += 1; return "palm_test_\(getpid())_\(databases)" }
        let admin = adminURL
        let r = try ProcessRunner.run("/usr/bin/psql", [admin, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", "CREATE DATABASE \(name)"])
        guard r.status == 0 else { throw Failure.createdb(r.stderr) }
        guard var c = URLComponents(string: admin) else { throw Failure.createdb("bad admin URL") }
        c.path = "/" + name
        return c.string ?? admin
    }

    /// Runs SQL as the admin user on `database` (tests that sabotage the server's state).
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let r = try ProcessRunner.run("/usr/bin/psql", [url(database: database), "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        guard r.status == 0 else { throw Failure.createdb(r.stderr) }
        return r.stdout
    }

    private static func stopAll() {
        guard let bin = binDirectory else { return }
        let owner = (try? ProcessRunner.run("/usr/bin/id", ["-u", "postgres"]).status) == 0 ? "postgres" : "nobody"
        for data in started.current {
            _ = try? ProcessRunner.run("/usr/sbin/runuser", ["-u", owner, "--", bin + "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"])
            try? FileManager.default.removeItem(atPath: (data as NSString).deletingLastPathComponent)
        }
    }

    /// Restarts the server (`pg_ctl restart -m fast`: every connection is dropped).
    public func restart() throws {
        let r = try ProcessRunner.run("/usr/sbin/runuser", ["-u", owner, "--", bin + "/pg_ctl", "-D", dataDirectory, "-l", (dataDirectory as NSString).deletingLastPathComponent + "/log", "-m", "fast", "-w", "restart"])
        guard r.status == 0 else { throw Failure.start(r.stdout) }
    }

    private static func serverBinaries() throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        guard let v = versions.last, FileManager.default.isExecutableFile(atPath: "\(root)/\(v)/bin/pg_ctl") else { throw Failure.noServer }
        return "\(root)/\(v)/bin"
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

}

/// The state backends a store-level test runs against.
public enum TestBackend: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite, postgresql
    public var description: String { rawValue }
}
