import FuzzSupport
import PalmSecurity
import PalmWire

/// Migration tickets as HELLO carries them: decoded, re-encoded, validated against a key that
/// did not sign them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTicket(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = input(start, count)
    if let t = try? MigrationTicket.decode(bytes) {
        require((try? MigrationTicket.decode(t.encoded())) == t, "ticket round trip")
    }
    let validator = TicketValidator(coordinators: fuzzCoordinators, clockSkew: 30)
    let result = try? validator.validate(bytes, destination: .zero, peer: .zero, now: 1_800_000_000)
    require(result == nil, "a ticket nobody signed was accepted")
    return 0
}
