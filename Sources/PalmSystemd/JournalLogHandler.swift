import CSystemdShims
import Foundation
import Logging
import PalmWire
import PalmSupport

/// A swift-log handler that writes structured entries to journald with `sd_journal_sendv`.
///
/// Every entry carries `MESSAGE`, `PRIORITY` (syslog levels), `SYSLOG_IDENTIFIER`, `CODE_FILE`,
/// `CODE_LINE`, `CODE_FUNC`; an entry whose metadata names an `event` (``PalmEvent``) also carries
/// that event's stable `MESSAGE_ID` and `PALM_EVENT`; every other metadata key becomes a field of
/// its own, upper-cased (`MIGRATION_ID`, `VM`, `PEER`, `ROUND`, …), so `journalctl VM=web-1` works.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public let identifier: String

    public init(identifier: String) { self.identifier = identifier }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The stable MESSAGE_ID of each event (never changed once released).
    public static let messageIDs: [PalmEvent: String] = [
        .daemonReady: "d50840324ac54ec8a80bead6a9aa1b86",
        .daemonReloaded: "e1f9d65d1cd3441a832e81992dd7e609",
        .daemonStopping: "b7e48b75759f4d3eb863fb99126723d9",
        .migrationStarted: "519ab0ddc6dd4f7cb0bde4ad1423b8e5",
        .roundDone: "94f3c97a015e43af91cdf346f7b10b71",
        .stopAndCopy: "6f2048ca6a1f4936b8435ed64b37f2ea",
        .committed: "d3e016d8b9d74828a9a72a2b0fc5f9f8",
        .aborted: "f32333019da741f5bdca45e51851dda5",
        .resumedHere: "a962f8158286408c8655ca2424f014ef",
        .attestationFailed: "79699730997048a9ba4c37e34cc319d2",
        .ticketRejected: "e82384f36a384082b0cd98dbe523d317",
        .accessDenied: "1355a1a8327b4a7193e4b6e974272bf5",
        .connectionRefused: "c45e7b4e9fca4cf0bf69dd2f5b0c674a",
        .recovery: "3b282306e42645bfa211305de7d45ab2",
        .migrationScheduled: "e3ac525177614288a8b5956740670838",
        .auditHead: "11e948e00c9749da94bfedbc1638133a",
        .leaderElected: "6809b40cef074e649fff5d573969c7e0",
        .leaderFollowing: "175cccf0d44340b48438e8e747b18210",
        .vmLifecycle: "1757a4eb50d941d1ac1c7eee7fcadc32",
    ]

    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// A journal field name: upper case letters, digits and underscores, not starting with one.
    public static func fieldName(_ key: String) -> String? {
        let mapped = String(key.uppercased().unicodeScalars.map { ("A"..."Z").contains($0) || ("0"..."9").contains($0) ? Character($0) : "_" })
        let trimmed = mapped.drop { $0 == "_" || $0.isNumber }
        guard !trimmed.isEmpty, trimmed.count <= 64 else { return nil }
        return String(trimmed)
    }

    /// The fields of one entry, in order.
    public func fields(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?,
                       file: String, function: String, line: UInt) -> [(String, String)] {
        var all = metadata
        if let extra { all.merge(extra) { _, new in new } }
        var fields: [(String, String)] = [("MESSAGE", message.description), ("PRIORITY", "\(JournalLogHandler.priority(level))"),
                                          ("SYSLOG_IDENTIFIER", identifier), ("CODE_FILE", file), ("CODE_LINE", "\(line)"),
                                          ("CODE_FUNC", function)]
        for (key, value) in all.sorted(by: { $0.key < $1.key }) {
            if key == "event" {
                if let event = PalmEvent(rawValue: "\(value)"), let id = JournalLogHandler.messageIDs[event] {
                    fields.append(("MESSAGE_ID", id))
                }
                fields.append(("PALM_EVENT", "\(value)"))
            } else if let name = JournalLogHandler.fieldName(key), !["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "MESSAGE_ID"].contains(name) {
                fields.append((name, "\(value)"))
            }
        }
        return fields
    }

    public func log(event: LogEvent) {
        log(level: event.level, message: event.message, metadata: event.metadata, source: event.source,
            file: event.file, function: event.function, line: event.line)
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        let items = fields(level: level, message: message, metadata: extra, file: file, function: function, line: line)
            .map { Array("\($0.0)=\($0.1)".utf8) }
        var buffers = items.map { bytes -> UnsafeMutableRawBufferPointer in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
            b.copyBytes(from: bytes)
            return b
        }
        defer { for b in buffers { b.deallocate() } }
        var iov = zip(buffers.indices, items).map { i, bytes in iovec(iov_base: buffers[i].baseAddress, iov_len: bytes.count) }
        _ = iov.withUnsafeMutableBufferPointer { palm_journal_sendv($0.baseAddress, Int32($0.count)) }
        buffers.removeAll(keepingCapacity: true)
    }
}
