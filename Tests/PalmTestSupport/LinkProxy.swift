import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP forwarder on loopback whose current connections a test can cut at a chosen moment,
/// while it keeps accepting new ones (a link that drops and comes back).
public final class LinkProxy: @unchecked Sendable {
    public let port: UInt16
    private let listenFD: Int32
    private let upstreamPort: UInt16
    private let lock = NSLock()
    private var clientBytes: [UInt8] = []
    /// Per connection, in accept order.
    private var links: [Link] = []

    /// Everything the first client sent through the proxy so far (a recorded session channel).
    public var recordedClientBytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return clientBytes }

    public init(upstreamPort: UInt16) throws {
        self.upstreamPort = upstreamPort
        (listenFD, port) = LinkProxy.listenLoopback()
        Thread { [self] in acceptLoop() }.start()
    }

    /// A listening socket on 127.0.0.1 (any port) and its port.
    public static func listenLoopback() -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = loopback(0)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 16)
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getsockname(fd, $0, &len) } }
        return (fd, UInt16(bigEndian: bound.sin_port))
    }

    /// A socket connected to 127.0.0.1:`port`, or -1.
    public static func connectLoopback(_ port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = loopback(port)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); return -1 }
        return fd
    }

    static func loopback(_ port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = port.bigEndian
        return a
    }

    private func acceptLoop() {
        while true {
            let client = accept(listenFD, nil, nil)
            if client < 0 { return }
            let up = LinkProxy.connectLoopback(upstreamPort)
            if up < 0 { close(client); continue }
            let link = Link(client: client, upstream: up)
            lock.lock(); let index = links.count; links.append(link); lock.unlock()
            Thread { [self] in
                link.finished(reset: !LinkProxy.pump(client, up) { chunk in
                    lock.lock()
                    if index == 0 { clientBytes += chunk }
                    link.forwarded += chunk.count
                    lock.unlock()
                })
            }.start()
            Thread { link.finished(reset: !LinkProxy.pump(up, client)) }.start()
        }
    }

    /// One proxied connection. Its sockets stay open until both directions have stopped (so a
    /// number is never shut down after reuse); if either direction could no longer deliver, both
    /// are closed with an RST, as a real connection to a vanished peer would be.
    private final class Link: @unchecked Sendable {
        let client: Int32, upstream: Int32
        /// Bytes carried client → server (guarded by the proxy's lock).
        var forwarded = 0
        private let lock = NSLock()
        private var done = 0
        private var reset = false
        private var closed = false
        init(client: Int32, upstream: Int32) { self.client = client; self.upstream = upstream }

        /// Cuts both directions now (no more bytes pass); the pumps then finish.
        func sever() {
            lock.lock()
            defer { lock.unlock() }
            guard !closed else { return }
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(upstream, Int32(SHUT_RDWR))
        }

        func finished(reset failed: Bool) {
            lock.lock()
            defer { lock.unlock() }
            done += 1
            reset = reset || failed
            if failed {
                // Wake the other direction: it may be blocked reading a side that is still open.
                shutdown(client, Int32(SHUT_RDWR))
                shutdown(upstream, Int32(SHUT_RDWR))
            }
            guard done == 2 else { return }
            for fd in [client, upstream] {
                if reset {
                    var l = linger(l_onoff: 1, l_linger: 0)
                    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
                }
                close(fd)
            }
            closed = true
        }
    }

    /// Copies `from` → `to` until `from` ends (then half-closes `to`: true) or `to` can take no
    /// more (false).
    @discardableResult
    private static func pump(_ from: Int32, _ to: Int32, observe: ([UInt8]) -> Void = { _ in }) -> Bool {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            observe(Array(buf[0..<n]))
            var off = 0
            while off < n {
                let w = buf[off..<n].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if w <= 0 { return false }
                off += w
            }
        }
        shutdown(to, Int32(SHUT_WR))
        return true
    }

    /// Sends `bytes` to `port` on a fresh connection and reads whatever comes back until the peer closes.
    public static func replay(_ bytes: [UInt8], to port: UInt16) -> [UInt8] {
        let fd = connectLoopback(port)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    /// Connections accepted so far.
    public var connectionCount: Int { lock.lock(); defer { lock.unlock() }; return links.count }

    /// Bytes connection `index` (in accept order) carried from client to server so far.
    public func forwarded(connection index: Int) -> Int {
        lock.lock(); defer { lock.unlock() }
        return index < links.count ? links[index].forwarded : 0
    }

    /// Cuts one connection (in accept order) and leaves the others alone.
    public func sever(connection index: Int) {
        lock.lock()
        let link = index < links.count ? links[index] : nil
        lock.unlock()
        link?.sever()
    }

    /// Cuts every connection now open (both directions, no more bytes pass).
    public func sever() {
        lock.lock()
        let all = links
        lock.unlock()
        for link in all { link.sever() }
    }

    deinit {
        sever()
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }
}
