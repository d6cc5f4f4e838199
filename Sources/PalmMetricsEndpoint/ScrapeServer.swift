import Foundation
import PalmSupport
#if canImport(Glibc)
import Glibc
#endif

/// The plain-HTTP server behind `GET /metrics`: one listening socket, one resource, nothing else.
///
/// It speaks the subset of HTTP/1.1 a Prometheus scraper uses — one request per connection, a
/// request line and headers, no body — and answers with `Connection: close`:
///
/// ```text
///   GET /metrics HTTP/1.1     →  200, the exposition (the query string is ignored)
///   HEAD /metrics             →  405 Method Not Allowed, Allow: GET
///   GET /anything-else        →  404 Not Found
///   not HTTP / too long       →  400 Bad Request / 431 Request Header Fields Too Large
/// ```
///
/// Guarantees (the endpoint is unauthenticated, so every one is a bound a stranger cannot move):
/// at most ``Limits/connections`` requests are handled at once — a connection beyond them is closed
/// at once, so a scraper retries rather than queues; a request is read into a buffer of at most
/// ``Limits/requestBytes``; each connection, reading and answering, ends after ``Limits/deadline``
/// seconds whatever the peer does. The listening address is bound before `init` returns, and
/// ``stop()`` closes it and returns when the accept thread has ended.
///
/// It replaced FlyingFox, whose proxy handler imports FoundationNetworking and so linked libcurl —
/// and with it some forty libraries (GnuTLS, Kerberos, LDAP, …) — into every palm daemon.
final class ScrapeServer: Sendable {
    struct Limits: Sendable {
        /// Requests handled at once (one thread each).
        var connections = 4
        /// Request line and headers, at most.
        var requestBytes = 4096
        /// Seconds a connection may take from accept to the last byte of the answer.
        var deadline = 5.0
    }

    struct Response: Sendable {
        var status: Int
        var reason: String
        var contentType = "text/plain; charset=utf-8"
        var headers: [(String, String)] = []
        var body: [UInt8]
    }

    enum Failure: Error, CustomStringConvertible {
        case badAddress(String)
        case cannotListen(String, String)
        var description: String {
            switch self {
            case let .badAddress(a): return "'\(a)' is not an IP address"
            case let .cannotListen(a, why): return "cannot listen on \(a): \(why)"
            }
        }
    }

    /// The bound port (the kernel's pick when 0 was asked for).
    let port: UInt16
    private let listener: Int32
    /// stop() writes here to wake the accept loop.
    private let wake: (read: Int32, write: Int32)
    private let limits: Limits
    private let active = LockedValueBox(0)
    private let stopping = LockedValueBox(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// Binds `host:port` (numeric IPv4 or IPv6) and starts accepting; `resource` answers a GET of
    /// `path`.
    init(host: String, port: UInt16, path: String, limits: Limits = Limits(),
         resource: @escaping @Sendable () -> Response) throws {
        self.limits = limits
        let address = "\(host.contains(":") ? "[\(host)]" : host):\(port)"
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let info = list else { throw Failure.badAddress(host) }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure.cannotListen(address, String(cString: strerror(errno))) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw Failure.cannotListen(address, why)
        }
        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.port = withUnsafePointer(to: &bound) { p in
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }  // same offset in sockaddr_in6
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            close(fd)
            throw Failure.cannotListen(address, "pipe: \(String(cString: strerror(errno)))")
        }
        for f in fds { _ = fcntl(f, F_SETFD, FD_CLOEXEC) }
        listener = fd
        wake = (fds[0], fds[1])
        let thread = Thread { [self] in
            acceptLoop(path: path, resource: resource)
            stopped.signal()
        }
        thread.name = "palm-metrics"
        thread.start()
    }

    /// Closes the listening socket; requests already being answered finish within their deadline.
    func stop() {
        guard !stopping.exchange(true) else { return }
        var byte: UInt8 = 1
        guard write(wake.write, &byte, 1) == 1 else { return }
        stopped.wait()
        close(listener)
        close(wake.read)
        close(wake.write)
    }

    private func acceptLoop(path: String, resource: @escaping @Sendable () -> Response) {
        while true {
            var p = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            guard poll(&p, 2, -1) >= 0 || errno == EINTR else { return }
            if p[1].revents != 0 { return }
            guard p[0].revents != 0 else { continue }
            let s = accept(listener, nil, nil)
            guard s >= 0 else { continue }
            _ = fcntl(s, F_SETFD, FD_CLOEXEC)
            let admitted = active.withLockedValue { n -> Bool in
                guard n < limits.connections else { return false }
                n += 1
                return true
            }
            guard admitted else {
                close(s)
                continue
            }
            let handler = Thread { [self] in
                answer(s, path: path, resource: resource)
                close(s)
                active.withLockedValue { $0 -= 1 }
            }
            handler.name = "palm-metrics-request"
            handler.start()
        }
    }

    private func answer(_ s: Int32, path: String, resource: () -> Response) {
        let end = MonotonicClock.now() + limits.deadline
        let response: Response
        switch readRequest(s, until: end) {
        case let .request(method, target):
            let requested = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
            if requested != path {
                response = Self.plain(404, "Not Found", "only \(path) is served here\n")
            } else if method != "GET" {
                var r = Self.plain(405, "Method Not Allowed", "\(path) answers GET\n")
                r.headers.append(("Allow", "GET"))
                response = r
            } else {
                response = resource()
            }
        case .tooLong:
            response = Self.plain(431, "Request Header Fields Too Large", "a request is at most \(limits.requestBytes) bytes\n")
        case .malformed:
            response = Self.plain(400, "Bad Request", "not an HTTP/1.x request\n")
        case .gone:
            return
        }
        var head = "HTTP/1.1 \(response.status) \(response.reason)\r\nContent-Type: \(response.contentType)\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
        _ = writeAll(s, Array(head.utf8) + response.body, until: end)
    }

    enum Request: Equatable {
        case request(method: String, target: String)
        case tooLong, malformed, gone
    }

    /// Reads up to the blank line that ends the headers.
    private func readRequest(_ s: Int32, until end: Double) -> Request {
        var buffer = [UInt8](repeating: 0, count: limits.requestBytes)
        var used = 0
        while true {
            guard wait(s, for: Int16(POLLIN), until: end) else { return .gone }
            let n = buffer.withUnsafeMutableBytes { recv(s, $0.baseAddress! + used, $0.count - used, 0) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return .gone }
            used += n
            if let request = Self.parse(buffer[0..<used]) { return request }
            if used == buffer.count { return .tooLong }
        }
    }

    /// The request in `bytes` once its headers are complete (nil: not yet).
    static func parse(_ bytes: ArraySlice<UInt8>) -> Request? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4,
              bytes.indices.dropLast(3).contains(where: { bytes[$0..<$0 + 4].elementsEqual(terminator) }) else { return nil }
        guard let lineEnd = bytes.firstIndex(of: 13),
              let line = String(bytes: bytes[bytes.startIndex..<lineEnd], encoding: .utf8) else { return .malformed }
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[1].hasPrefix("/"), parts[2].hasPrefix("HTTP/1.") else { return .malformed }
        return .request(method: String(parts[0]), target: String(parts[1]))
    }

    private func writeAll(_ s: Int32, _ bytes: [UInt8], until end: Double) -> Bool {
        var sent = 0
        while sent < bytes.count {
            guard wait(s, for: Int16(POLLOUT), until: end) else { return false }
            let n = bytes.withUnsafeBytes { send(s, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    /// Waits for `events` on `s` until the connection's deadline; false when it passed.
    private func wait(_ s: Int32, for events: Int16, until end: Double) -> Bool {
        while true {
            let left = end - MonotonicClock.now()
            guard left > 0 else { return false }
            var p = pollfd(fd: s, events: events, revents: 0)
            let r = poll(&p, 1, Int32(min(left * 1000 + 1, 60_000)))
            if r < 0, errno == EINTR { continue }
            return r > 0
        }
    }

    static func plain(_ status: Int, _ reason: String, _ text: String) -> Response {
        Response(status: status, reason: reason, body: Array(text.utf8))
    }
}
