/// The Xen driver's decoders of bytes a peer sends — CONFIG's platform description
/// (``XenPlatformConfig``: page layout, libxl configuration, CPU policy, provisional state) and
/// STATE's domain state (``XenDomainState``) — without touching Xen: for fuzzing and tools.
///
/// Guarantees: each call either returns the canonical encoding of what it accepted (the current
/// version, which decodes again to the same value) or throws a ``HypervisorError`` naming what is
/// wrong; no input makes it trap or allocate more than the format's limits allow.
public enum XenWireFormat {
    /// Decodes a platform description (versions 1 and 2) and returns its version-2 encoding.
    public static func canonicalPlatform(_ bytes: [UInt8]) throws -> [UInt8] {
        try XenPlatformConfig.decode(bytes).encode()
    }

    /// Decodes a domain state and returns its encoding.
    public static func canonicalState(_ bytes: [UInt8]) throws -> [UInt8] {
        try XenDomainState.decode(bytes).encode()
    }

    /// The pages a decoded platform description numbers (the sum of its layout's ranges).
    public static func pageCount(ofPlatform bytes: [UInt8]) throws -> UInt64 {
        try XenPlatformConfig.decode(bytes).layout.count
    }
}
