import Foundation
import FuzzSupport
import PalmSecurity

/// Evidence files (JSON) as `evidence verify` reads them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvidence(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let e = try? Evidence.decode(Data(input(start, count))) else { return 0 }
    let checks = e.verify(coordinators: fuzzCoordinators)
    require(!checks.allSatisfy(\.passed), "evidence nobody signed verified")
    return 0
}
