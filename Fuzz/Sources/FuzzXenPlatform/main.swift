import FuzzSupport
import PalmXenDriver

/// CONFIG's Xen platform description and STATE's Xen domain state, as a destination decodes them
/// from an authenticated but possibly hostile source: whatever is accepted re-encodes to bytes that
/// decode to the same canonical form, and the layout's page count survives the round trip.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzXenPlatform(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = input(start, count)
    if let canonical = try? XenWireFormat.canonicalPlatform(bytes) {
        require((try? XenWireFormat.canonicalPlatform(canonical)) == canonical, "platform description round trip")
        require((try? XenWireFormat.pageCount(ofPlatform: canonical)) == (try? XenWireFormat.pageCount(ofPlatform: bytes)),
                "page count changed in the round trip")
    }
    if let canonical = try? XenWireFormat.canonicalState(bytes) {
        require((try? XenWireFormat.canonicalState(canonical)) == canonical, "domain state round trip")
    }
    return 0
}
