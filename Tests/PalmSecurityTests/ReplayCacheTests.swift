import Foundation
import PalmSecurity
import Testing

/// The destination's memory of accepted ticket nonces: a nonce is accepted once, stays known
/// across a reopen until it expires, and is forgotten after.
@Suite("Replay cache")
struct ReplayCacheTests {
    func freshPath() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("palm-replay-\(UUID().uuidString)").path
        return dir + "/replay"
    }

    @Test("a nonce is accepted once, also after a reopen; expired nonces are pruned; the file is private")
    func onceAcrossReopen() throws {
        let path = try freshPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        do {
            let cache = try ReplayCache(path: path, now: 1000)
            try cache.insert(nonce: "aa", expiry: 2000)
            try cache.insert(nonce: "bb", expiry: 1500)
            #expect(throws: TicketError.replayed(nonce: "aa")) { try cache.insert(nonce: "aa", expiry: 2000) }
            #expect(cache.count == 2)
        }
        // Reopened after "bb" expired: "aa" is still refused, "bb" is gone from memory and file.
        let reopened = try ReplayCache(path: path, now: 1600)
        #expect(reopened.count == 1)
        #expect(throws: TicketError.replayed(nonce: "aa")) { try reopened.insert(nonce: "aa", expiry: 2000) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "aa 2000\n")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }
}
