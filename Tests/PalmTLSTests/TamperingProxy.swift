import Foundation
import PalmTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy between a client and a server that parses the client→server TLS record stream and
/// flips one byte in the body of the `targetRecord`-th encrypted (type 23) record, in flight.
final class TamperingProxy: @unchecked Sendable {
    let port: UInt16
    private let listenFD: Int32
    private let targetRecord: Int
    private(set) var tampered = false

    init(upstreamPort: UInt16, targetRecord: Int) throws {
        self.targetRecord = targetRecord
        (listenFD, port) = LinkProxy.listenLoopback()
        Thread { [self] in
            let client = accept(listenFD, nil, nil)
            let upstream = LinkProxy.connectLoopback(upstreamPort)
            Thread { TamperingProxy.pump(from: upstream, to: client, tamper: nil) }.start()
            TamperingProxy.pump(from: client, to: upstream) { [self] buffer in self.tamper(&buffer) }
        }.start()
    }

    deinit { close(listenFD) }

    // Record parser state (client → server direction only).
    private var pending: [UInt8] = []
    private var appRecords = 0

    /// Scans complete records in the stream seen so far and flips a byte in the target record.
    private func tamper(_ chunk: inout [UInt8]) {
        // Track record boundaries across chunks: `pending` holds bytes of the current partial header.
        var i = 0
        while i < chunk.count {
            if remainingInRecord > 0 {
                let take = min(remainingInRecord, chunk.count - i)
                if flipAt >= 0 && flipAt < take && !tampered {
                    chunk[i + flipAt] ^= 0x01
                    tampered = true
                }
                if flipAt >= 0 { flipAt -= take }
                remainingInRecord -= take
                i += take
                continue
            }
            pending.append(chunk[i])
            i += 1
            if pending.count == 5 {
                let type = pending[0]
                remainingInRecord = Int(pending[3]) << 8 | Int(pending[4])
                pending.removeAll()
                flipAt = -1
                if type == 23 {
                    appRecords += 1
                    if appRecords == targetRecord { flipAt = min(100, remainingInRecord - 1) }
                }
            }
        }
    }
    private var remainingInRecord = 0
    private var flipAt = -1

    private static func pump(from: Int32, to: Int32, tamper: ((inout [UInt8]) -> Void)?) {
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            var chunk = Array(buf[0..<n])
            tamper?(&chunk)
            var off = 0
            while off < chunk.count {
                let w = chunk[off...].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if w <= 0 { shutdown(from, Int32(SHUT_RDWR)); shutdown(to, Int32(SHUT_RDWR)); return }
                off += w
            }
        }
        shutdown(to, Int32(SHUT_WR))
    }
}
