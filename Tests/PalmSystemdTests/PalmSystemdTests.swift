import Logging
import PalmSystemd
import PalmWire
import Testing
import PalmSupport

@Suite("PalmSystemd units")
struct PalmSystemdTests {
    @Test("the watchdog withholds pings when a registered loop stops beating")
    func stall() {
        let liveness = Liveness(notifier: ServiceNotifier(), interval: 10)
        liveness.beat("accept", at: 100)
        liveness.beat("scheduler", at: 100)
        #expect(liveness.stalled(now: 105).isEmpty)
        liveness.beat("accept", at: 108)
        #expect(liveness.stalled(now: 111) == ["scheduler"])
        #expect(liveness.stalled(now: 119) == ["accept", "scheduler"])
        #expect(liveness.maxWait(fallback: 5) == 2.5)
    }

    @Test("every event has its own stable MESSAGE_ID (128-bit hex)")
    func messageIDs() {
        let ids = PalmEvent.allCases.compactMap { JournalLogHandler.messageIDs[$0] }
        #expect(ids.count == PalmEvent.allCases.count)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
    }

    @Test("metadata becomes journal fields: upper-cased, sanitized; reserved names cannot be overridden")
    func fields() {
        var h = JournalLogHandler(identifier: "palm-test")
        h[metadataKey: "migration-id"] = "abc"
        let f = h.fields(level: .warning, message: "hello", metadata: ["event": "migration.committed", "VM": "web-1", "PRIORITY": "0", "_bad": "x"],
                         file: "F.swift", function: "f()", line: 7)
        let d = Dictionary(f, uniquingKeysWith: { a, _ in a })
        #expect(d["PRIORITY"] == "4" && d["SYSLOG_IDENTIFIER"] == "palm-test" && d["MESSAGE"] == "hello")
        #expect(d["MIGRATION_ID"] == "abc" && d["VM"] == "web-1" && d["BAD"] == "x")
        #expect(d["MESSAGE_ID"] == JournalLogHandler.messageIDs[.committed] && d["PALM_EVENT"] == "migration.committed")
        #expect(f.filter { $0.0 == "PRIORITY" }.count == 1)
        #expect(JournalLogHandler.fieldName("9lives") == "LIVES" && JournalLogHandler.fieldName("__") == nil)
    }
}
