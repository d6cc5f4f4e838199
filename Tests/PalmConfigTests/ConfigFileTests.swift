import Foundation
import PalmConfig
import PalmTLS
import Testing

/// The configuration reader on bad files: a named error naming the file, never a crash or a leak
/// (the fuzzer's finding: invalid UTF-8 leaked Foundation's read buffer, and nothing bounded the read).
@Suite("Configuration files")
struct ConfigFileTests {
    func temp(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "palm-config-\(UUID().uuidString).toml"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("a file that is not UTF-8 is refused by name")
    func notUTF8() throws {
        let path = try temp(Array("[tls]\ncertificate = \"".utf8) + [0xC3, 0x28, 0xFF] + Array("\"\n".utf8))
        defer { unlink(path) }
        #expect(throws: ConfigError.unreadable(file: path, reason: "not UTF-8 text")) { _ = try ConfigFile(path: path) }
    }

    @Test("a file larger than 1 MiB is refused without being read whole")
    func tooLarge() throws {
        let path = try temp(Array(repeating: UInt8(ascii: "#"), count: ConfigFile.maxSize + 1))
        defer { unlink(path) }
        #expect(throws: ConfigError.unreadable(file: path, reason: "larger than 1 MiB: not a configuration file")) { _ = try ConfigFile(path: path) }
    }

    @Test("a missing file names itself")
    func missing() {
        #expect(throws: ConfigError.self) { _ = try ConfigFile(path: "/nonexistent/palm.toml") }
    }

    /// toml++ aborts the process on these (an assertion in parse_key, release builds too): palm
    /// must refuse them by name before the parser sees them.
    @Test("a table header that does not start with a key is a named syntax error, not an abort",
          arguments: ["[,\n", "[[ ,]]\n", "[ +a]\n", "x = 1\n[\n", "[tls]\n[\t{a}]\n", "[#]\n"])
    func badHeaders(_ text: String) throws {
        let path = NSTemporaryDirectory() + "palm-hdr-\(UUID().uuidString).toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ConfigError.self) { _ = try ConfigFile(path: path) }
        #expect(TOMLHeaderCheck.firstBadHeader(in: text) != nil)
    }

    @Test("valid TOML with arrays, inline tables and strings that look like headers passes the check")
    func goodHeaders() {
        let text = #"""
        # [, in a comment
        [a]
        x = [
          [1, 2],
          [{ y = 1 }],
          [+3],
        ]
        s = """
        [, inside a multi-line string
        """
        t = '[,'
        [[b]]
        [ "quoted key" . c ]
        ['lit']
        """#
        #expect(TOMLHeaderCheck.firstBadHeader(in: text) == nil)
    }

    @Test("every input the fuzzer once failed on still loads or fails by name", arguments: try regressionInputs())
    func regressions(_ path: String) throws {
        do { _ = try ConfigFile(path: path) } catch let e as ConfigError { _ = e.description }
    }
}

func regressionInputs() throws -> [String] {
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Regressions/FuzzConfig").path
    return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().map { dir + "/" + $0 }
}

/// Records an issue unless `load` fails with a configuration error (wrong value or type) naming `key`.
func expectRefusal(of line: String, key expected: String, _ load: () throws -> Void) {
    do {
        try load()
        Issue.record("accepted \(line)")
    } catch let e as ConfigError {
        switch e {
        case let .invalidValue(_, key, _), let .wrongType(_, key, _): #expect(key == expected, "\(e)")
        default: Issue.record("\(line): \(e)")
        }
    } catch {
        Issue.record("\(line): \(error)")
    }
}

/// `[metrics] listen`: off when absent, an IP literal with a port when set, a named error otherwise.
@Suite("Metrics listen address")
struct MetricsSettingsTests {
    func listen(_ toml: String) throws -> Endpoint? {
        let path = NSTemporaryDirectory() + "palm-metrics-\(UUID().uuidString).toml"
        try toml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        return try MetricsSettings.listen(try ConfigFile(path: path))
    }

    @Test("absent: off; IPv4, IPv6 and port 0 (any free port) are accepted")
    func accepted() throws {
        #expect(try listen("[tls]\n") == nil)
        #expect(try listen("[metrics]\nlisten = \"127.0.0.1:9464\"\n") == Endpoint(host: "127.0.0.1", port: 9464))
        #expect(try listen("[metrics]\nlisten = \"[::1]:9464\"\n") == Endpoint(host: "::1", port: 9464))
        #expect(try listen("[metrics]\nlisten = \"10.0.0.5:0\"\n") == Endpoint(host: "10.0.0.5", port: 0))
    }

    @Test("a host name, a missing or bad port, a non-string: named configuration errors", arguments: [
        "listen = \"localhost:9464\"", "listen = \"127.0.0.1\"", "listen = \"127.0.0.1:99999\"", "listen = \"127.0.0.1:x\"",
        "listen = \":9464\"", "listen = 9464",
    ])
    func refused(_ line: String) {
        expectRefusal(of: line, key: "metrics.listen") { _ = try listen("[metrics]\n\(line)\n") }
    }
}

/// `[tls] send_buffer`: 256 KiB when absent, a size within 16K…16M when set, a named error otherwise.
@Suite("TLS send buffer setting")
struct SendBufferSettingTests {
    func load(_ line: String) throws -> TLSConfiguration {
        let path = NSTemporaryDirectory() + "palm-tls-\(UUID().uuidString).toml"
        try "[tls]\ncertificate = \"c\"\nkey = \"k\"\nca = \"a\"\n\(line)\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        return try TLSConfiguration.load(try ConfigFile(path: path))
    }

    @Test("absent: 256 KiB; a size in range is taken as given")
    func accepted() throws {
        #expect(try load("").sendBuffer == 256 << 10)
        #expect(try load("send_buffer = \"1M\"").sendBuffer == 1 << 20)
        #expect(try load("send_buffer = \"16K\"").sendBuffer == 16 << 10)
    }

    @Test("too small, too large or not a size: a named configuration error", arguments: [
        "send_buffer = \"4K\"", "send_buffer = \"1G\"", "send_buffer = \"lots\"", "send_buffer = true",
    ])
    func refused(_ line: String) {
        expectRefusal(of: line, key: "tls.send_buffer") { _ = try load(line) }
    }
}
