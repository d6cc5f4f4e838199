import Foundation
import Logging

/// Where a daemon's logs go: journald when systemd connected its stderr to the journal (the
/// `JOURNAL_STREAM` it sets names stderr's device and inode), readable lines on stderr otherwise
/// (a terminal, a pipe, a test).
public enum DaemonLogging {
    /// True when stderr is the journal stream systemd gave this process.
    public static var stderrIsJournal: Bool {
        guard let stream = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        var st = stat()
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]), fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    /// Bootstraps swift-log once for the process and returns the daemon's logger.
    public static func bootstrap(identifier: String, level: Logger.Level = .info) -> Logger {
        let journal = stderrIsJournal
        LoggingSystem.bootstrap { label in
            if journal { return JournalLogHandler(identifier: identifier) }
            return StreamLogHandler.standardError(label: label)
        }
        var logger = Logger(label: identifier)
        logger.logLevel = level
        return logger
    }
}
