import Foundation
import PalmSupport
#if canImport(Glibc)
import Glibc
#endif

/// The nonces of every ticket a destination accepted, kept on disk until the ticket expires, so a
/// captured ticket cannot be used twice — not even across a restart.
///
/// File format: one line per nonce, `HEX EXPIRY`, appended and fsync'd before the migration
/// proceeds; rewritten durably (``DurableFile``) without expired entries when the cache is opened.
public final class ReplayCache: Sendable {
    public let path: String
    /// Live nonces and their expiry. The append-only file is written under the same lock, so the
    /// file and the table agree at every instant.
    private let entries: LockedValueBox<[String: UInt64]>
    private let fd: Int32

    public init(path: String, now: UInt64) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var live: [String: UInt64] = [:]
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                guard parts.count == 2, let expiry = UInt64(parts[1]), expiry >= now else { continue }
                live[String(parts[0])] = expiry
            }
        }
        // Prune: replace the file with only the live entries, durably — a crash here must not
        // leave an empty file that forgets nonces still valid.
        try DurableFile.write(Array(live.map { "\($0.key) \($0.value)\n" }.joined().utf8), to: path)
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw DurableFile.Failure.write(path: path, errno: errno) }
        entries = LockedValueBox(live)
    }

    deinit { close(fd) }

    public var count: Int { entries.withLockedValue { $0.count } }

    /// Records `nonce` until `expiry`; throws ``TicketError/replayed(nonce:)`` if it is known.
    public func insert(nonce: String, expiry: UInt64) throws {
        try entries.withLockedValue { entries in
            guard entries[nonce] == nil else { throw TicketError.replayed(nonce: nonce) }
            let line = Array("\(nonce) \(expiry)\n".utf8)
            guard write(fd, line, line.count) == line.count, fsync(fd) == 0 else {
                throw DurableFile.Failure.write(path: path, errno: errno)
            }
            entries[nonce] = expiry
        }
    }
}
