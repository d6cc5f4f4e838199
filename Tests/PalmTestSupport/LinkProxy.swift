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
    private var live: [Int32] = []
    private var clientBytes: [UInt8] = []
    /// Per connection, in accept order: its two sockets and the bytes it carried client → server.
    private var connections: [(client: Int32, upstream: Int32, forwarded: Int)] = []

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
            lock.lock(); live += [client, up]; let index = connections.count; connections.append((client, up, 0)); lock.unlock()
            Thread { [self] in LinkProxy.pump(client, up) { chunk in
                lock.lock()
                if index == 0 { clientBytes += chunk }
                connections[index].forwarded += chunk.count
                lock.unlock()
            } }.start()
            Thread { LinkProxy.pump(up, client) }.start()
        }
    }

    private static func pump(_ from: Int32, _ to: Int32, observe: ([UInt8]) -> Void = { _ in }) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            observe(Array(buf[0..<n]))
            var off = 0
            while off < n {
                let w = buf[off..<n].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if w <= 0 {
                    // The far side is gone: so is this side, as a real connection would reset.
                    shutdown(from, Int32(SHUT_RDWR))
                    return
                }
                off += w
            }
        }
        shutdown(to, Int32(SHUT_WR))
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
    public var connectionCount: Int { lock.lock(); defer { lock.unlock() }; return connections.count }

    /// Bytes connection `index` (in accept order) carried from client to server so far.
    public func forwarded(connection index: Int) -> Int {
        lock.lock(); defer { lock.unlock() }
        return index < connections.count ? connections[index].forwarded : 0
    }

    /// Cuts one connection (in accept order) and leaves the others alone.
    public func sever(connection index: Int) {
        lock.lock()
        let c = index < connections.count ? connections[index] : nil
        lock.unlock()
        if let c {
            shutdown(c.client, Int32(SHUT_RDWR))
            shutdown(c.upstream, Int32(SHUT_RDWR))
        }
    }

    /// Cuts every connection now open (both directions, no more bytes pass).
    public func sever() {
        lock.lock()
        let fds = live
        live.removeAll()
        lock.unlock()
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    deinit {
        sever()
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }
}
