import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The nonces of every ticket a destination accepted, kept on disk until the ticket expires, so a
/// captured ticket cannot be used twice — not even across a restart.
///
/// File format: one line per nonce, `HEX EXPIRY`, appended and fsync'd before the migration
/// proceeds; rewritten without expired entries when the cache is opened.
public final class ReplayCache: @unchecked Sendable {
    public let path: String
    private var entries: [String: UInt64] = [:]
    private let lock = NSLock()
    private var fd: Int32 = -1

    public init(path: String, now: UInt64) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let expiry = UInt64(parts[1]), expiry >= now else { continue }
                entries[String(parts[0])] = expiry
            }
        }
        // Prune: rewrite atomically with only live entries.
        let tmp = path + ".tmp"
        let body = entries.map { "\($0.key) \($0.value)\n" }.joined()
        try body.write(toFile: tmp, atomically: false, encoding: .utf8)
        guard rename(tmp, path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission) }
    }

    deinit { if fd >= 0 { close(fd) } }

    public var count: Int { lock.lock(); defer { lock.unlock() }; return entries.count }

    /// Records `nonce` until `expiry`; throws ``TicketError/replayed(nonce:)`` if it is known.
    public func insert(nonce: String, expiry: UInt64) throws {
        lock.lock()
        defer { lock.unlock() }
        guard entries[nonce] == nil else { throw TicketError.replayed(nonce: nonce) }
        let line = Array("\(nonce) \(expiry)\n".utf8)
        guard write(fd, line, line.count) == line.count, fsync(fd) == 0 else {
            throw CocoaError(.fileWriteUnknown)
        }
        entries[nonce] = expiry
    }
}
