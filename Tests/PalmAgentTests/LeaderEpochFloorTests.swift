import Foundation
@testable import PalmAgent
import PalmMetrics
import PalmMigration
import PalmSecurity
import PalmTLS
import Testing

/// The agent's own pieces, without a network: the epoch floor orders and tickets are checked
/// against, and which failures count as refusals.
@Suite("Agent epoch floor and refusals")
struct LeaderEpochFloorTests {
    func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("palm-agent-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("the floor only rises, survives a restart, and refuses when it cannot be recorded")
    func floor() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let floor = LeaderEpochFloor(path: dir + "/leader-epoch")
        #expect(floor.current == 0)
        #expect(floor.admit(3))
        #expect(floor.admit(3), "the same epoch again is the same leader")
        #expect(!floor.admit(2), "a lower epoch is a deposed leader")
        // A restarted agent reads the floor back.
        let restarted = LeaderEpochFloor(path: dir + "/leader-epoch")
        #expect(restarted.current == 3)
        #expect(!restarted.admit(2))
        // Where the floor cannot be written, a higher epoch is refused (the floor must never move
        // back after a restart), and the old floor stays.
        let unwritable = LeaderEpochFloor(path: dir + "/no-such-dir/leader-epoch")
        #expect(!unwritable.admit(1))
        #expect(unwritable.current == 0)
        // A garbled file counts as 0, never as a high floor nobody can pass.
        try "not a number\n".write(toFile: dir + "/garbled", atomically: true, encoding: .utf8)
        #expect(LeaderEpochFloor(path: dir + "/garbled").current == 0)
    }

    @Test("refusals are counted by what was refused; other failures are not refusals")
    func refusals() {
        #expect(AgentMetrics.Refusal(TicketError.replayed(nonce: "aa")) == .ticket)
        #expect(AgentMetrics.Refusal(MigrationError.ticketRejected("x")) == .ticket)
        #expect(AgentMetrics.Refusal(MigrationError.attestationRejected("x")) == .attestation)
        #expect(AgentMetrics.Refusal(MigrationError.signatureRejected("x")) == .signature)
        #expect(AgentMetrics.Refusal(MigrationError.cancelled) == nil)
        #expect(AgentMetrics.Refusal(MigrationError.local("disk full")) == nil)
    }
}
