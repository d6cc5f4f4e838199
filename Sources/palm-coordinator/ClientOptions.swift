import ArgumentParser
import Foundation
import PalmConfig
import PalmControl
import PalmCrypto
import PalmTLS

/// How an operator reaches the coordinator; each option falls back to an environment variable.
struct ClientOptions: ParsableArguments {
    @Option(help: "The coordinator, HOST:PORT; with two or more, a comma list tried in order (or PALM_SERVER).") var server: String?
    @Option(help: "Your certificate (PEM) (or PALM_CERT).") var cert: String?
    @Option(help: "Its private key (PEM) (or PALM_KEY).") var key: String?
    @Option(help: "The cluster CA certificate (or PALM_CA).") var ca: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    private func setting(_ value: String?, _ env: String, _ flag: String) throws -> String {
        if let value { return value }
        if let v = ProcessInfo.processInfo.environment[env], !v.isEmpty { return v }
        throw ValidationError("--\(flag) (or \(env)) is required")
    }

    /// `--server` / PALM_SERVER: one HOST:PORT or a comma list of them (at most 16).
    private func endpoints() throws -> [Endpoint] {
        let text = try setting(server, "PALM_SERVER", "server")
        let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty, parts.count <= 16 else { throw ValidationError("--server takes 1 to 16 HOST:PORT, comma-separated") }
        return try parts.map { p in
            guard let e = Endpoint(p) else { throw ValidationError("--server must be HOST:PORT (comma-separated), not '\(p)'") }
            return e
        }
    }

    func validate() throws {
        _ = try endpoints()
        for (v, e, f) in [(cert, "PALM_CERT", "cert"), (key, "PALM_KEY", "key"), (ca, "PALM_CA", "ca")] { _ = try setting(v, e, f) }
    }

    /// Connects; exits 2 naming the failure when the coordinator cannot be reached or authenticated.
    func connect() throws -> CoordinatorFailover {
        do {
            let targets = try endpoints()
            let tls = TLSConfiguration(certificateChain: try setting(cert, "PALM_CERT", "cert"), privateKey: try setting(key, "PALM_KEY", "key"),
                                       trustRoots: try setting(ca, "PALM_CA", "ca"))
            return CoordinatorFailover(targets: targets, context: try TLSContext(configuration: tls))
        } catch {
            fail("cannot reach the coordinator: \(error)")
            throw ExitCode(2)
        }
    }

    /// Sends one request; a refusal is printed and exits 1.
    func call(_ request: APIRequest, on client: CoordinatorFailover? = nil) throws -> [[String: String]] {
        let c = try client ?? connect()
        let response: APIResponse
        do { response = try c.call(request) } catch {
            fail("cannot reach the coordinator: \(error)")
            throw ExitCode(2)
        }
        guard response.ok else {
            fail(response.error ?? "refused")
            throw ExitCode(1)
        }
        return response.rows
    }

    /// Prints rows as a table with the given columns (JSON with --json).
    func show(_ rows: [[String: String]], columns: [String]) {
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: (try? e.encode(rows)) ?? Data("[]".utf8), as: UTF8.self))
            return
        }
        print(Table(columns: columns, rows: rows).rendered, terminator: "")
    }
}

func fail(_ message: String) {
    FileHandle.standardError.write(Data("palm-coordinator: \(message)\n".utf8))
}

/// A plain-text table: upper-case headers, columns padded to their widest cell.
struct Table {
    var columns: [String]
    var rows: [[String: String]]

    var rendered: String {
        let cells = rows.map { row in columns.map { row[$0] ?? "-" } }
        let widths = columns.indices.map { i in max(columns[i].count, cells.map { $0[i].count }.max() ?? 0) }
        func line(_ values: [String]) -> String {
            values.enumerated().map { i, v in i == values.count - 1 ? v : v.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ") + "\n"
        }
        return line(columns.map { $0.uppercased() }) + cells.map(line).joined()
    }
}
