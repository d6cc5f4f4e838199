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

    /// Replaces `path` with `bytes` (mode 0600). Safe for writers racing on one path: each
    /// writes its own temporary file (mkstemp beside `path`), so the last rename wins whole; a
    /// failed write removes its temporary file.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        var template = Array((path + ".XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw Failure.write(path: path, errno: errno) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let tmp = String(nulTerminated: template)
        func fail(_ e: Int32, _ at: String) -> Failure { close(fd); unlink(tmp); return Failure.write(path: at, errno: e) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail(errno, tmp)
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw fail(errno, tmp) }
        close(fd)
        guard rename(tmp, path) == 0 else { let e = errno; unlink(tmp); throw Failure.write(path: path, errno: e) }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
