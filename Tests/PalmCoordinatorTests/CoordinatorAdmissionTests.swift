import Foundation
@testable import PalmControl
@testable import PalmCoordinator
import PalmTestSupport
import PalmTLS
import PalmWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// palm-coordinator under clients that never authenticate, never finish a request, or send what
/// must not be stored: its real clients are still answered and its resources stay bounded.
@Suite("Coordinator admission and bounds", .serialized)
struct CoordinatorAdmissionTests {
    let pki = TestPKI.shared

    static func rawConnect(_ port: UInt16, from local: String) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var me = sockaddr_in(), to = sockaddr_in()
        me.sin_family = sa_family_t(AF_INET); me.sin_addr.s_addr = inet_addr(local)
        to.sin_family = sa_family_t(AF_INET); to.sin_addr.s_addr = inet_addr("127.0.0.1"); to.sin_port = port.bigEndian
        let ok = withUnsafePointer(to: &me) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
            && withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        if !ok { close(fd); return -1 }
        return fd
    }

    static func status(_ pid: Int32, _ field: String) -> Int {
        ((try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? "").split(separator: "\n")
            .first { $0.hasPrefix(field + ":") }.flatMap { Int($0.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") } ?? -1
    }

    static func cpuSeconds(_ pid: Int32) -> Double {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let f = stat[stat.index(after: close)...].split(separator: " ")
        return (Double(f[11]) ?? 0) / 100 + (Double(f[12]) ?? 0) / 100
    }

    func cli(_ c: CoordinatorProcess, _ who: String, _ args: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args + [
            "--server", "127.0.0.1:\(c.port)", "--cert", pki.cert(who), "--key", pki.key(who), "--ca", pki.caCert])
    }

    @Test("a flood of strangers and 200 requests that announce 1 MiB and send a byte: `hosts` and a heartbeat are answered, threads and memory stay bounded")
    func flood() throws {
        let c = try CoordinatorProcess(pki: pki)
        try c.start()
        defer { c.kill() }
        let pid = try #require(c.process?.processIdentifier)
        let rssBefore = Self.status(pid, "VmRSS")
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<500 { let fd = Self.rawConnect(c.port, from: "127.0.0.2"); if fd >= 0 { held.append(fd) } }
        let partialHello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC]
        for _ in 0..<50 {
            let fd = Self.rawConnect(c.port, from: "127.0.0.3")
            if fd >= 0 { _ = partialHello.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }; held.append(fd) }
        }
        var channels: [TLSChannel] = []
        defer { for ch in channels { ch.close() } }
        for cert in Array(repeating: "eve", count: 10) + Array(repeating: "client", count: 10) {
            if let ch = try? TLSChannel.connect(host: "127.0.0.1", port: c.port, serverName: "127.0.0.1", context: pki.context(cert), from: "127.0.0.4") {
                channels.append(ch)
            }
        }
        // An agent certificate announcing 1 MiB, then one byte, on 200 connections.
        for i in 0..<200 {
            guard let ch = try? TLSChannel.connect(host: "127.0.0.1", port: c.port, serverName: "127.0.0.1",
                                                   context: pki.context("client"), from: "127.0.0.\(10 + i / 8)") else { continue }
            try? ch.write([0x00, 0x10, 0x00, 0x00, 0x7B])
            channels.append(ch)
        }
        #expect(channels.count >= 215, "the attacker's connections were made: \(channels.count)")
        let threads = Self.status(pid, "Threads")
        let rss = Self.status(pid, "VmRSS")
        // The real clients.
        let hosts = try cli(c, "alice", ["hosts"])
        #expect(hosts.status == 0, "hosts: \(hosts.stderr)")
        let agent = try CoordinatorClient(host: "127.0.0.1", port: c.port, context: pki.context("server"))
        let report = HostReport(destinationAddress: "127.0.0.1:7410", cpus: 2, cpuLoad: 0, memoryTotal: 1 << 30, memoryUsed: 0, vms: [])
        #expect(try agent.call(APIRequest(action: "agent.heartbeat", report: report)).ok)
        #expect(threads < 100, "palm-coordinator ran \(threads) threads under the flood")
        #expect(rss - rssBefore < 64 << 10, "RSS grew by \(rss - rssBefore) KiB under the flood")
    }

    /// One byte per read, as a client trickling its request would send it.
    final class TrickleStream: ByteStream {
        let bytes: [UInt8]
        var consumed = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            guard consumed < bytes.count else { return 0 }
            buffer[0] = bytes[consumed]
            consumed += 1
            return 1
        }
        func write(_ bytes: UnsafeRawBufferPointer) throws {}
    }

    /// The request deadline is consulted before every read, the length prefix's included: a
    /// client trickling its 4-byte prefix cannot hold a worker for four read timeouts.
    @Test("the request deadline covers the length prefix too, read by read")
    func deadlineCoversPrefix() {
        let stream = TrickleStream([0, 0, 0, 2] + Array("{}".utf8))
        var reads = 0
        #expect(throws: TLSError.self) {
            _ = try CoordinatorAPI.receiveBody(from: stream, limit: 1024) {
                reads += 1
                if reads > 1 { throw TLSError.timeout(operation: "request", seconds: 0) }
            }
        }
        #expect(stream.consumed == 1, "the deadline was first checked again after \(stream.consumed) bytes")
    }

    @Test("accept failing for want of descriptors backs off (no busy loop) and is reported")
    func acceptBackoff() throws {
        let c = try CoordinatorProcess(pki: pki)
        try c.start(prefix: ["/usr/bin/prlimit", "--nofile=64:64", "--"])
        defer { c.kill() }
        let pid = try #require(c.process?.processIdentifier)
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<120 { let fd = Self.rawConnect(c.port, from: "127.0.0.6"); if fd >= 0 { held.append(fd) } }
        let before = Self.cpuSeconds(pid)
        #expect(c.waitForLog("accept failed", timeout: 30), "the failure is reported: \(c.log)")
        let spent = Self.cpuSeconds(pid) - before
        #expect(spent < 1.0, "palm-coordinator spent \(spent) CPU-seconds while accept kept failing")
    }

    @Test("oversized or malformed request fields are refused without being stored or echoed; denials are audited only up to a rate")
    func oversizedFields() throws {
        let c = try CoordinatorProcess(pki: pki)
        try c.start()
        defer { c.kill() }
        let eve = try CoordinatorClient(host: "127.0.0.1", port: c.port, context: pki.context("eve"))
        let auditedBefore = try AuditLog(store: CoordinatorStore(path: c.database), key: nil).entries().count
        let name = String(repeating: "x", count: 10_000)
        for _ in 0..<50 {
            let r = try eve.call(APIRequest(action: name))
            #expect(!r.ok && r.error?.contains("action name of 10000 bytes") == true)
            #expect(r.error?.contains("xxxxxxxx") == false, "the name is echoed")
        }
        let long = try eve.call(APIRequest(action: "hosts", arguments: ["host": String(repeating: "h", count: 5000)]))
        #expect(!long.ok && long.error?.contains("argument value of 5000 bytes") == true)
        // Too big for an auditor's request at all: the connection is closed, nothing is read into memory.
        #expect(throws: (any Error).self) { _ = try eve.call(APIRequest(action: String(repeating: "y", count: 256 << 10))) }
        let entries = try AuditLog(store: CoordinatorStore(path: c.database), key: nil).entries()
        let added = entries.count - auditedBefore
        #expect(added <= 21, "\(added) entries audited for 51 denials")
        #expect(!entries.contains { $0.action.contains("xxxx") || $0.detail.contains("xxxx") || $0.target.contains("hhhh") })
        #expect(entries.map { $0.action.utf8.count + $0.detail.utf8.count + $0.target.utf8.count }.max() ?? 0 < 300)
    }
}
