#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket whose connections become ``TLSChannel``s. The TCP accept and the TLS
/// handshake are separate steps so a server can hand the handshake to a worker thread and a slow
/// or silent client cannot stall the accept loop.
public final class TLSListener: @unchecked Sendable {
    public let context: TLSContext
    private let fd: Int32
    public let host: String
    /// The bound port (the kernel's choice when 0 was requested).
    public let port: UInt16
    private var isClosed = false
    private var nonBlocking = false

    public init(host: String, port: UInt16, context: TLSContext, backlog: Int32 = 128) throws {
        self.context = context
        self.host = host
        var lastError = "no address"
        var bound: Int32 = -1
        for (family, addr) in try TCPSocket.resolve(host, port: port, passive: true) {
            let s = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard s >= 0 else { lastError = String(cString: strerror(errno)); continue }
            var one: Int32 = 1
            setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let rc = addr.withUnsafeBytes {
                bind(s, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count))
            }
            if rc == 0, listen(s, backlog) == 0 { bound = s; break }
            lastError = String(cString: strerror(errno))
            Glibc.close(s)
        }
        guard bound >= 0 else { throw TLSError.bindFailed(host: host, port: port, detail: lastError) }
        fd = bound
        self.port = TCPSocket.address(bound, peer: false).port
    }

    deinit { close() }

    /// Waits for the next TCP connection and returns its socket (nil after `timeout` seconds).
    /// Throws ``TLSError/closed`` once the listener is closed.
    public func acceptSocket(timeout: Double? = nil) throws -> Int32? {
        while true {
            guard !isClosed else { throw TLSError.closed }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms: Int32 = timeout.map { Int32(max(0, min(Double(Int32.max), $0 * 1000))) } ?? -1
            let r = poll(&p, 1, ms)
            if r == 0 { return nil }
            if r < 0 {
                if errno == EINTR { continue }
                throw TLSError.socketFailure(operation: "poll", errno: errno)
            }
            guard !isClosed else { throw TLSError.closed }
            let s = Glibc.accept(fd, nil, nil)
            if s >= 0 {
                _ = fcntl(s, F_SETFD, FD_CLOEXEC)
                return s
            }
            switch errno {
            case EINTR, EAGAIN, ECONNABORTED: continue
            case EINVAL: throw TLSError.closed  // shut down by close()
            default: throw TLSError.socketFailure(operation: "accept", errno: errno)
            }
        }
    }

    /// The listening socket, for readiness polling (``acceptNow()`` accepts).
    public var descriptor: Int32 { fd }

    /// Accepts a connection that is already waiting, without blocking; nil when none is. Returns
    /// the socket and the peer's numeric address. Throws ``TLSError/closed`` once closed, and
    /// ``TLSError/socketFailure(operation:errno:)`` when accept fails (e.g. EMFILE: out of descriptors).
    public func acceptNow() throws -> (socket: Int32, address: String)? {
        guard !isClosed else { throw TLSError.closed }
        while true {
            if !nonBlocking { TCPSocket.setNonBlocking(fd); nonBlocking = true }
            let s = Glibc.accept(fd, nil, nil)
            if s >= 0 {
                _ = fcntl(s, F_SETFD, FD_CLOEXEC)
                return (s, TCPSocket.address(s, peer: true).host)
            }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EAGAIN: return nil
            case EINVAL, EBADF: throw TLSError.closed
            default: throw TLSError.socketFailure(operation: "accept", errno: errno)
            }
        }
    }

    /// Accepts one connection and runs the TLS handshake on the calling thread.
    public func accept(timeout: Double? = nil) throws -> TLSChannel? {
        guard let s = try acceptSocket(timeout: timeout) else { return nil }
        return try TLSChannel.accept(socket: s, context: context)
    }

    /// Stops listening; threads blocked in `accept` wake with ``TLSError/closed``.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}
