import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading a whole file of a size nobody promised (a configuration, a kernel's measurement log
/// in securityfs, which reports no size): read until the end, never more than a limit.
public enum BoundedFile {
    public enum Failure: Error, Equatable, Sendable {
        /// `open` or `read` failed (errno's text); `missing` when the file does not exist.
        case unreadable(path: String, reason: String, missing: Bool)
        /// More than `limit` bytes.
        case tooLarge(path: String, limit: Int)
    }

    public static func read(_ path: String, limit: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure.unreadable(path: path, reason: String(cString: strerror(errno)), missing: errno == ENOENT) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure.unreadable(path: path, reason: String(cString: strerror(errno)), missing: false)
            }
            if n == 0 { return bytes }
            guard bytes.count + n <= limit else { throw Failure.tooLarge(path: path, limit: limit) }
            bytes += chunk[0..<n]
        }
    }
}
