import ArgumentParser
import Foundation
import PalmConfig
import PalmControl
import PalmTLS

/// How an operator reaches the coordinator; each option falls back to an environment variable.
struct ClientOptions: ParsableArguments {
    @Option(help: "The coordinator, HOST:PORT (or PALM_SERVER).") var server: String?
    @Option(help: "Your certificate (PEM) (or PALM_CERT).") var cert: String?
    @Option(help: "Its private key (PEM) (or PALM_KEY).") var key: String?
    @Option(help: "The cluster CA certificate (or PALM_CA).") var ca: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    private func setting(_ value: String?, _ env: String, _ flag: String) throws -> String {
        if let value { return value }
        if let v = ProcessInfo.processInfo.environment[env], !v.isEmpty { return v }
        throw ValidationError("--\(flag) (or \(env)) is required")
    }

    func validate() throws {
        let s = try setting(server, "PALM_SERVER", "server")
        guard Endpoint(s) != nil else { throw ValidationError("--server must be HOST:PORT, not '\(s)'") }
        for (v, e, f) in [(cert, "PALM_CERT", "cert"), (key, "PALM_KEY", "key"), (ca, "PALM_CA", "ca")] { _ = try setting(v, e, f) }
    }

    /// Connects; exits 2 naming the failure when the coordinator cannot be reached or authenticated.
    func connect() throws -> CoordinatorClient {
        do {
            let address = try setting(server, "PALM_SERVER", "server")
            guard let endpoint = Endpoint(address) else { throw ValidationError("--server must be HOST:PORT, not '\(address)'") }
            let tls = TLSConfiguration(certificateChain: try setting(cert, "PALM_CERT", "cert"), privateKey: try setting(key, "PALM_KEY", "key"),
                                       trustRoots: try setting(ca, "PALM_CA", "ca"))
            return try CoordinatorClient(host: endpoint.host, port: endpoint.port, context: try TLSContext(configuration: tls))
        } catch {
            fail("cannot reach the coordinator: \(error)")
            throw ExitCode(2)
        }
    }

    /// Sends one request; a refusal is printed and exits 1.
    func call(_ request: APIRequest, on client: CoordinatorClient? = nil) throws -> [[String: String]] {
        let c = try client ?? connect()
        let response: APIResponse
        do { response = try c.call(request) } catch {
            fail("the coordinator connection failed: \(error)")
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
