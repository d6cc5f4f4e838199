import Foundation
import FuzzSupport
import PalmAgent
import PalmCoordinator

/// The TOML configuration loaders of all three daemons, on whatever text the input is. The file
/// lives in PALM_FUZZ_TMP (scripts/fuzz.sh gives each run a scratch directory it removes, so a
/// fuzzer killed mid-input leaves nothing behind), else /dev/shm.
let path = "\(ProcessInfo.processInfo.environment["PALM_FUZZ_TMP"] ?? "/dev/shm")/palm-fuzz-config-\(getpid()).toml"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard FileManager.default.createFile(atPath: path, contents: Data(input(start, count))) else { return 0 }
    defer { unlink(path) }
    _ = try? SourceConfiguration.load(path: path)
    _ = try? DestinationConfiguration.load(path: path)
    _ = try? CoordinatorConfiguration.load(path: path)
    return 0
}
