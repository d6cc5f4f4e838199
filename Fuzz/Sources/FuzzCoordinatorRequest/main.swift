import FuzzSupport
import PalmControl
import PalmCoordinator

/// The coordinator's API as a client sends it: a length-prefixed JSON request read under a size
/// cap, then checked field by field before anything is audited or echoed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCoordinatorRequest(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let stream = MemoryStream(input(start, count), chunk: 4096)
    for _ in 0..<4 {
        guard let request = try? CoordinatorAPI.receive(APIRequest.self, from: stream, limit: 64 << 10) else { break }
        if RequestLimits().problem(with: request) == nil {
            require(request.action.utf8.count <= 64, "an oversized action passed the checks")
        }
        let shown = CoordinatorService.printable(request.action)
        require(shown.utf8.count <= 64, "printable() let \(shown.utf8.count) bytes through")
    }
    return 0
}
