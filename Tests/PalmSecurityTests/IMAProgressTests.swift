import Foundation
import PalmCrypto
import PalmSecurity
import PalmWire
import Testing

/// The coordinator's incremental following of a host's IMA log, and the one-line form it keeps
/// in its database between heartbeats.
@Suite("IMA log followed across quotes")
struct IMAProgressTests {
    static func entries(_ range: Range<Int>) -> [IMALog.Entry] {
        range.map { IMALog.Entry(path: "/usr/lib/lib\($0).so", sha256: SHA256.hash(Array("file \($0)".utf8))) }
    }

    /// PCR 10 after `entries`, as the kernel extends it.
    static func pcr10(_ entries: [IMALog.Entry]) -> Digest32 {
        entries.reduce(Digest32.zero) { SHA256.hash($0.bytes + $1.sha256Extension.bytes) }
    }

    @Test("a log sent in two chunks, the first not yet covered by a quote: its entries count once the quote reaches them, and the stored line brings the follower back exactly")
    func chunksAndStorage() throws {
        let all = Self.entries(0..<10)
        var progress = IMAProgress(resetCount: 3)
        // The first six entries arrive, the quote covers all ten: nothing is verified yet, six wait.
        let first = try progress.absorb(chunk: IMALog(entries: Array(all[0..<6])).encoded(), offset: 0, complete: false,
                                        quoted: Self.pcr10(all), maxPendingBytes: 1 << 20)
        #expect(first.isEmpty)
        #expect(progress.pendingCount == 6 && progress.nextOffset == 6)
        // Stored between heartbeats and read back: the same follower.
        let stored = try #require(IMAProgress(storageText: progress.storageText))
        #expect(stored == progress)
        progress = stored
        let rest = try progress.absorb(chunk: IMALog(entries: Array(all[6...])).encoded(), offset: 6, complete: true,
                                       quoted: Self.pcr10(all), maxPendingBytes: 1 << 20)
        #expect(rest == all)
        #expect(progress.verifiedCount == 10 && progress.pendingCount == 0 && progress.verifiedValue == Self.pcr10(all).hex)
        #expect(IMAProgress(storageText: progress.storageText) == progress)
        // Sent from another offset than where it stands: refused by name.
        #expect(throws: IMAProgress.Refusal.wrongOffset(expected: 10, got: 4)) {
            _ = try progress.absorb(chunk: [], offset: 4, complete: true, quoted: Self.pcr10(all), maxPendingBytes: 1 << 20)
        }
    }

    @Test("a stored line that is not one (another version, a field missing, a bad digest or base64) is not read as progress")
    func malformedStorage() {
        let good = IMAProgress(resetCount: 1).storageText
        #expect(IMAProgress(storageText: good) != nil)
        for bad in ["", "v2 1 0 \(Digest32.zero.hex) 0 ", "v1 1 0 \(Digest32.zero.hex) 0", "v1 1 -1 \(Digest32.zero.hex) 0 ",
                    "v1 1 0 nothex 0 ", "v1 1 0 \(Digest32.zero.hex) 0 !!!", "{\"resetCount\":1}"] {
            #expect(IMAProgress(storageText: bad) == nil, "\(bad)")
        }
    }
}
