import Foundation
@testable import PalmMetricsEndpoint
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The metrics endpoint's HTTP server: what it answers, and the bounds a stranger on the
/// (unauthenticated) port cannot move.
@Suite("Scrape server")
struct ScrapeServerTests {
    static func server(_ limits: ScrapeServer.Limits = .init()) throws -> ScrapeServer {
        try ScrapeServer(host: "127.0.0.1", port: 0, path: "/metrics", limits: limits) {
            ScrapeServer.Response(status: 200, reason: "OK", body: Array("palm_up 1\n".utf8))
        }
    }

    /// A raw TCP client: connects, sends `request`, returns everything until the server closes
    /// (nil when nothing came back before the close).
    struct Client {
        let fd: Int32
        init(port: UInt16) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { Glibc.close(fd); throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        }
        func send(_ text: String) { _ = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }
        /// Reads to end of stream (at most 30 s: a bound on the test, not a synchronisation).
        func readAll() -> String {
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 30_000) == 1 else { break }
                let n = recv(fd, &buf, buf.count, 0)
                guard n > 0 else { break }
                out += buf[0..<n]
            }
            return String(decoding: out, as: UTF8.self)
        }
        func close() { Glibc.close(fd) }
    }

    static func exchange(_ port: UInt16, _ request: String) throws -> String {
        let c = try Client(port: port)
        defer { c.close() }
        c.send(request)
        return c.readAll()
    }

    @Test("GET /metrics answers 200 with the exposition, its length and Connection: close; a query string is ignored")
    func servesMetrics() throws {
        let s = try Self.server()
        defer { s.stop() }
        for target in ["/metrics", "/metrics?x=1"] {
            let r = try Self.exchange(s.port, "GET \(target) HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(r.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(r.contains("Content-Length: 10\r\n"))
            #expect(r.contains("Connection: close\r\n"))
            #expect(r.hasSuffix("\r\n\r\npalm_up 1\n"))
        }
    }

    @Test("another path is 404, another method 405 naming GET, garbage 400, an endless header 431")
    func refusesTheRest() throws {
        let s = try Self.server()
        defer { s.stop() }
        #expect(try Self.exchange(s.port, "GET /admin HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 404 "))
        let post = try Self.exchange(s.port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(post.hasPrefix("HTTP/1.1 405 ") && post.contains("Allow: GET\r\n"))
        #expect(try Self.exchange(s.port, "\u{16}\u{03}\u{01}garbage\r\n\r\n").hasPrefix("HTTP/1.1 400 "))
        #expect(try Self.exchange(s.port, "GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 5000)).hasPrefix("HTTP/1.1 431 "))
        #expect(ScrapeServer.parse(ArraySlice(Array("GET /metrics HTTP/1.1\r\n".utf8))) == nil, "headers not finished yet")
        #expect(ScrapeServer.parse(ArraySlice(Array("GET metrics HTTP/1.1\r\n\r\n".utf8))) == .malformed)
    }

    @Test("a silent stranger is cut off at the deadline without an answer")
    func deadline() throws {
        var limits = ScrapeServer.Limits()
        limits.deadline = 0.3
        let s = try Self.server(limits)
        defer { s.stop() }
        let c = try Client(port: s.port)
        defer { c.close() }
        let started = Date()
        #expect(c.readAll() == "")
        #expect(Date().timeIntervalSince(started) < 20, "closed by the server, not by the test's own bound")
    }

    @Test("strangers holding every slot get new connections closed at once; a slot that frees serves the next scrape")
    func connectionLimit() throws {
        var limits = ScrapeServer.Limits()
        limits.connections = 2
        let s = try Self.server(limits)
        defer { s.stop() }
        let holders = try (0..<2).map { _ in try Client(port: s.port) }
        // The holders are admitted once a request of theirs would be answered: a third connection
        // is turned away with no answer while both hold their slots.
        var turnedAway = false
        for _ in 0..<200 where !turnedAway {
            turnedAway = try Self.exchange(s.port, "GET /metrics HTTP/1.1\r\n\r\n") == ""
        }
        #expect(turnedAway)
        holders[0].send("GET /metrics HTTP/1.1\r\n\r\n")
        #expect(holders[0].readAll().hasPrefix("HTTP/1.1 200 "))
        holders[0].close()
        var served = false
        for _ in 0..<200 where !served {
            served = try Self.exchange(s.port, "GET /metrics HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 200 ")
        }
        #expect(served)
        holders[1].close()
    }

    @Test("a bad address and a taken port are named errors; after stop nothing listens")
    func bindingAndStop() throws {
        #expect(throws: ScrapeServer.Failure.self) { try ScrapeServer(host: "localhost", port: 0, path: "/metrics") { ScrapeServer.plain(200, "OK", "") } }
        let s = try Self.server()
        #expect(throws: ScrapeServer.Failure.self) { try ScrapeServer(host: "127.0.0.1", port: s.port, path: "/metrics") { ScrapeServer.plain(200, "OK", "") } }
        let port = s.port
        s.stop()
        s.stop()
        #expect(throws: (any Error).self) { try Client(port: port) }
    }
}
