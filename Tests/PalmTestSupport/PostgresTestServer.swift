import Foundation

/// A private PostgreSQL cluster for the tests: Debian's server binaries, `initdb` into a temporary
/// directory (as the `postgres` system user: initdb refuses root), password (SCRAM) authentication
/// on a free loopback port, stopped and removed when the test process exits. One per test
/// process; each test gets a fresh database of its own (``newDatabaseURL()``).
///
/// `PALM_TEST_POSTGRES_URL` (an admin URL of a server someone else runs) replaces it.
public final class PostgresTestServer: @unchecked Sendable {
    public static let user = "palm", password = "palm-test-password"

    /// The shared server, started on first use (the error says why it could not be).
    public static let shared: Result<PostgresTestServer, Error> = Result { try PostgresTestServer() }

    public let host = "127.0.0.1"
    public let port: Int
    private let bin: String
    private let external: String?
    private let counter = NSLock()
    private var databases = 0

    private nonisolated(unsafe) static var dataDirectory: String?
    private nonisolated(unsafe) static var binDirectory: String?

    /// The URL of the cluster's `postgres` database (administration).
    public var adminURL: String { external ?? url(database: "postgres") }

    public func url(database: String, password: String = PostgresTestServer.password) -> String {
        "postgresql://\(Self.user):\(password)@\(host):\(port)/\(database)"
    }

    private init() throws {
        bin = try Self.serverBinaries()
        if let given = ProcessInfo.processInfo.environment["PALM_TEST_POSTGRES_URL"], !given.isEmpty {
            external = given
            port = URLComponents(string: given)?.port ?? 5432
            return
        }
        external = nil
        let dir = "/tmp/palm-pg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let owner = try Self.run("/usr/bin/id", ["-u", "postgres"]).status == 0 ? "postgres" : "nobody"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "\(Self.password)\n".write(toFile: dir + "/pw", atomically: true, encoding: .utf8)
        _ = try Self.run("/bin/chown", ["-R", owner, dir])
        Self.dataDirectory = dir + "/data"
        Self.binDirectory = bin
        let initdb = try Self.run("/usr/sbin/runuser", ["-u", owner, "--", bin + "/initdb", "-D", dir + "/data", "-U", Self.user,
                                                        "--pwfile", dir + "/pw", "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync"])
        guard initdb.status == 0 else { throw Failure.initdb(initdb.stderr) }
        var lastError = ""
        for _ in 0..<3 {
            let p = try Self.freePort()
            let start = try Self.run("/usr/sbin/runuser", [
                "-u", owner, "--", bin + "/pg_ctl", "-D", dir + "/data", "-l", dir + "/log", "-w", "-t", "60", "start",
                "-o", "-c listen_addresses=127.0.0.1 -p \(p) -k \(dir) -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            ])
            if start.status == 0 {
                port = p
                atexit { PostgresTestServer.stop() }
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
        let r = try Self.run("/usr/bin/psql", [admin, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", "CREATE DATABASE \(name)"])
        guard r.status == 0 else { throw Failure.createdb(r.stderr) }
        guard var c = URLComponents(string: admin) else { throw Failure.createdb("bad admin URL") }
        c.path = "/" + name
        return c.string ?? admin
    }

    /// Runs SQL as the admin user on `database` (tests that sabotage the server's state).
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let r = try Self.run("/usr/bin/psql", [url(database: database), "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        guard r.status == 0 else { throw Failure.createdb(r.stderr) }
        return r.stdout
    }

    private static func stop() {
        guard let data = dataDirectory, let bin = binDirectory else { return }
        let owner = (try? run("/usr/bin/id", ["-u", "postgres"]).status) == 0 ? "postgres" : "nobody"
        _ = try? run("/usr/sbin/runuser", ["-u", owner, "--", bin + "/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: (data as NSString).deletingLastPathComponent)
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

    /// Runs a tool to its end with posix_spawn and waitpid; its output goes to a temporary file
    /// (`pg_ctl start` leaves a server behind that inherits the descriptors: a pipe would never
    /// reach end-of-file).
    private static func run(_ tool: String, _ args: [String]) throws -> ProcessRunner.Result {
        let out = "/tmp/palm-pg-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(out) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([tool] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, tool, &actions, nil, argv, environ)
        guard rc == 0 else { return ProcessRunner.Result(status: -1, stdout: "", stderr: "cannot run \(tool): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return ProcessRunner.Result(status: exited, stdout: text, stderr: text)
    }
}

/// The state backends a store-level test runs against.
public enum TestBackend: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite, postgresql
    public var description: String { rawValue }
}
