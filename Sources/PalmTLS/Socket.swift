#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PalmSupport

/// A monotonic deadline for bounding blocking operations.
struct Deadline {
    let instant: UInt64  // nanoseconds, CLOCK_MONOTONIC
    let seconds: Double

    init(seconds: Double) {
        self.seconds = seconds
        instant = Deadline.now() &+ UInt64(max(0, seconds) * 1e9)
    }

    static func now() -> UInt64 { MonotonicClock.nanoseconds() }

    /// Milliseconds left for poll(2), at least 0.
    var remainingMillis: Int32 {
        let now = Deadline.now()
        guard instant > now else { return 0 }
        return Int32(min(UInt64(Int32.max), (instant - now + 999_999) / 1_000_000))
    }
}

/// Non-blocking TCP socket helpers. Every wait is a poll(2) bounded by a ``Deadline``.
enum TCPSocket {
    /// Waits until `fd` is readable or writable; throws ``TLSError/timeout(operation:seconds:)``.
    static func wait(_ fd: Int32, for events: Int16, deadline: Deadline, operation: String) throws {
        while true {
            let ms = deadline.remainingMillis
            if ms == 0 { throw TLSError.timeout(operation: operation, seconds: deadline.seconds) }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&p, 1, ms)
            if r > 0 { return }
            if r == 0 { throw TLSError.timeout(operation: operation, seconds: deadline.seconds) }
            if errno != EINTR { throw TLSError.socketFailure(operation: "poll", errno: errno) }
        }
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Switches to blocking I/O where each send/recv waits at most `timeout` seconds; a call that
    /// times out fails with EAGAIN, which the channel reports as a timeout.
    static func setBlocking(_ fd: Int32, timeout: Double) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        let seconds = max(0.001, timeout)
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The lowest RTT TCP has seen on the connection (Linux's `tcpi_min_rtt`, in seconds): the
    /// path's own round trip, without the queueing a bulk transfer adds to the smoothed RTT.
    /// glibc's `struct tcp_info` stops before that field; the kernel's layout only ever grows, and
    /// `tcpi_min_rtt` (µs, u32) sits at byte 148 of it since Linux 4.10.
    static func roundTripTime(_ fd: Int32) -> Double? {
        var info = [UInt8](repeating: 0, count: 256)
        var len = socklen_t(info.count)
        let rc = info.withUnsafeMutableBytes { getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, $0.baseAddress, &len) }
        guard rc == 0, len >= 152 else { return nil }
        let micros = info.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 148, as: UInt32.self) }
        return micros > 0 && micros != UInt32.max ? Double(micros) / 1e6 : nil
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Resolves `host` (name or numeric address) to socket addresses.
    static func resolve(_ host: String, port: UInt16, passive: Bool) throws -> [(family: Int32, addr: [UInt8])] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        if passive { hints.ai_flags = AI_PASSIVE }
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw TLSError.addressResolution(host: host, detail: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(first) }
        var out: [(Int32, [UInt8])] = []
        var cur: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cur {
            let bytes = UnsafeRawBufferPointer(start: ai.pointee.ai_addr, count: Int(ai.pointee.ai_addrlen))
            out.append((ai.pointee.ai_family, Array(bytes)))
            cur = ai.pointee.ai_next
        }
        return out
    }

    /// Connects with a timeout; returns a connected non-blocking socket.
    static func connect(host: String, port: UInt16, timeout: Double, from local: String? = nil) throws -> Int32 {
        var lastError = "no address"
        for (family, addr) in try resolve(host, port: port, passive: false) {
            let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = String(cString: strerror(errno)); continue }
            if let local, let (_, bindAddr) = try resolve(local, port: 0, passive: false).first(where: { $0.family == family }) {
                let rc = bindAddr.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(bindAddr.count)) }
                guard rc == 0 else { lastError = "bind \(local): \(String(cString: strerror(errno)))"; close(fd); continue }
            }
            setNonBlocking(fd)
            setNoDelay(fd)
            let rc = addr.withUnsafeBytes {
                Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count))
            }
            if rc == 0 { return fd }
            if errno == EINPROGRESS {
                do {
                    try wait(fd, for: Int16(POLLOUT), deadline: Deadline(seconds: timeout), operation: "connect to \(host):\(port)")
                } catch {
                    close(fd)
                    throw error
                }
                var soError: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
                if soError == 0 { return fd }
                lastError = String(cString: strerror(soError))
            } else {
                lastError = String(cString: strerror(errno))
            }
            close(fd)
        }
        throw TLSError.connectFailed(host: host, port: port, detail: lastError)
    }

    /// The numeric address and port of a socket's peer or local end.
    static func address(_ fd: Int32, peer: Bool) -> (host: String, port: UInt16) {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len)
            }
        }
        guard rc == 0 else { return ("?", 0) }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        _ = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, len, &host, socklen_t(host.count), &serv, socklen_t(serv.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        return (String(nulTerminated: host), UInt16(String(nulTerminated: serv)) ?? 0)
    }
}
