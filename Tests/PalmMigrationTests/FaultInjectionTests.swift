import PalmMigration
import Testing

/// The engine's one test seam: armed only by the agents, from `PALM_TEST_STOP_AT`, and a typo
/// there is an error, never a test that silently stops nowhere.
@Suite("Fault injection seam")
struct FaultInjectionTests {
    @Test("unset or empty: disabled; a fault point's name: armed there; anything else: an error naming the variable")
    func fromEnvironment() throws {
        #expect(try FaultInjection.fromEnvironment([:]) == .disabled)
        #expect(try FaultInjection.fromEnvironment(["PALM_TEST_STOP_AT": ""]) == .disabled)
        for point in FaultPoint.allCases {
            #expect(try FaultInjection.fromEnvironment(["PALM_TEST_STOP_AT": point.rawValue]).stopAt == point)
        }
        do {
            _ = try FaultInjection.fromEnvironment(["PALM_TEST_STOP_AT": "after-comit"])
            Issue.record("a misspelt fault point was accepted")
        } catch {
            #expect("\(error)".contains("PALM_TEST_STOP_AT=after-comit is not a fault point"))
        }
        #expect(MigrationSender.Options().faults == .disabled)
    }
}
