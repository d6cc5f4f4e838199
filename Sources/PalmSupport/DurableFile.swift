import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Files that survive a crash at any instant entirely old or entirely new: write to a temporary
/// file, fsync it, rename it into place, fsync the directory. palm's one way of writing state.
public enum DurableFile {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case write(path: String, errno: Int32)
        public var description: String {
            switch self {
            case let .write(path, e): return "cannot write \(path) durably: \(String(cString: strerror(e)))"
            }
        }
    }

    /// Replaces `path` with `bytes` (mode 0600).
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure.write(path: tmp, errno: errno) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw Failure.write(path: tmp, errno: e)
            }
            written += n
        }
        guard fsync(fd) == 0 else { let e = errno; close(fd); throw Failure.write(path: tmp, errno: e) }
        close(fd)
        guard rename(tmp, path) == 0 else { throw Failure.write(path: path, errno: errno) }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
