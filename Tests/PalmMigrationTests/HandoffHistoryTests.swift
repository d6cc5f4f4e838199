import Foundation
import PalmMigration
import PalmSupport
import PalmWire
import Testing

@Suite("HandoffHistory")
struct HandoffHistoryTests {
    let dir = NSTemporaryDirectory() + "palm-history-\(UUID().uuidString.prefix(8))"
    var path: String { dir + "/handoff-history.json" }

    init() throws { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }

    func destination(_ n: UInt8) -> Digest32 { Digest32([UInt8](repeating: n, count: 32))! }

    @Test("no sample: nil, so the prediction keeps its model; then the median of the last five, per destination")
    func median() {
        let h = HandoffHistory(path: path)
        #expect(h.typical(for: destination(1)) == nil)
        for s in [0.004, 0.009, 0.005] { h.record(s, for: destination(1)) }
        #expect(h.typical(for: destination(1)) == 0.005)
        #expect(h.typical(for: destination(2)) == nil, "another destination's hand-offs say nothing about this one")
        for s in [0.001, 0.001, 0.001] { h.record(s, for: destination(1)) }
        // The last five: 0.009, 0.005, 0.001, 0.001, 0.001 (the oldest, 0.004, is gone).
        #expect(h.typical(for: destination(1)) == 0.001)
    }

    @Test("survives the process: a fresh palm-source migrate reads what the last one measured")
    func persisted() {
        HandoffHistory(path: path).record(0.006, for: destination(3))
        #expect(HandoffHistory(path: path).typical(for: destination(3)) == 0.006)
    }

    @Test("bounded: the least recently used destinations are forgotten past the limit")
    func bounded() {
        let h = HandoffHistory(path: path)
        for n in 0...UInt8(HandoffHistory.maxDestinations) { h.record(0.002, for: destination(n)) }
        #expect(h.typical(for: destination(0)) == nil, "the oldest of \(HandoffHistory.maxDestinations + 1) destinations is dropped")
        #expect(h.typical(for: destination(1)) == 0.002)
        let reread = HandoffHistory(path: path)
        #expect(reread.typical(for: destination(0)) == nil && reread.typical(for: destination(UInt8(HandoffHistory.maxDestinations))) == 0.002)
    }

    @Test("a corrupt or hostile file is an empty history, never a crash or an absurd prediction")
    func corrupt() throws {
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
        #expect(HandoffHistory(path: path).typical(for: destination(1)) == nil)
        let hostile = #"[{"destination":"\#(destination(1).hex)","seconds":[-1]},{"destination":"\#(destination(2).hex)","seconds":[1e300]},{"destination":"\#(destination(3).hex)","seconds":[]}]"#
        try Data(hostile.utf8).write(to: URL(fileURLWithPath: path))
        let h = HandoffHistory(path: path)
        #expect(h.typical(for: destination(1)) == nil && h.typical(for: destination(2)) == nil && h.typical(for: destination(3)) == nil)
        h.record(-0.5, for: destination(4))
        h.record(.nan, for: destination(4))
        #expect(h.typical(for: destination(4)) == nil, "negative or NaN measurements are not recorded")
    }
}

@Suite("DurableFile")
struct DurableFileTests {
    @Test("writers racing on one path: each write succeeds, the file is one writer's bytes, whole; no temporary file is left")
    func concurrentWriters() throws {
        let dir = NSTemporaryDirectory() + "palm-durable-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/history.json"
        let payloads = (0..<8).map { [UInt8](repeating: UInt8(65 + $0), count: (8 - $0) << 13) }   // different lengths: an interleaving shows
        let failures = LockedValueBox<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            do { try DurableFile.write(payloads[i % payloads.count], to: path) } catch {
                failures.withLockedValue { $0.append("\(error)") }
            }
        }
        #expect(failures.withLockedValue { $0 }.isEmpty, "every writer's write succeeds: \(failures.withLockedValue { $0.prefix(3) })")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(payloads.contains(bytes), "a mix of writers' bytes: \(bytes.count) bytes starting \(bytes.prefix(2))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["history.json"])
    }
}
