import PalmCoordinator
import Testing

@Suite("Coordinator migration states")
struct MigrationRecordStateTests {
    @Test("the normal life: requested → ticketed → running → committed")
    func normal() throws {
        let s = try MigrationRecordState.requested.moving(to: .ticketed).moving(to: .running).moving(to: .committed)
        #expect(s == .committed && s.isFinal)
    }

    @Test("a finished migration can never move again (no migration runs twice)")
    func finalIsFinal() {
        for final in MigrationRecordState.allCases where final.isFinal {
            for next in MigrationRecordState.allCases {
                #expect(throws: MigrationRecordState.IllegalTransition(from: final, to: next)) { try final.moving(to: next) }
            }
        }
    }

    @Test("a migration past its commit point (in doubt) cannot be cancelled, only resolved")
    func noCancelWhenInDoubt() throws {
        #expect(throws: MigrationRecordState.IllegalTransition(from: .inDoubt, to: .cancelled)) {
            try MigrationRecordState.inDoubt.moving(to: .cancelled)
        }
        #expect(try MigrationRecordState.running.moving(to: .inDoubt).moving(to: .aborted) == .aborted)
        #expect(try MigrationRecordState.running.moving(to: .cancelled) == .cancelled)
    }
}
