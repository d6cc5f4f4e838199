import FuzzSupport
import PalmSecurity
import PalmWire

/// ATTEST payloads: decoded, then checked by an allowlist policy against a key that signed none.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAttestation(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = input(start, count)
    let message = bytes.withUnsafeBytes { try? Message.decode(type: .attest, payload: $0) }
    guard case let .attest(a)? = message else { return 0 }
    let policy = AttestationPolicy(allowedAgents: [a.agentDigest.hex], allowedConfigs: [], allowedHypervisors: [], maxClockSkew: 60)
    let accepted = (try? policy.check(a, nonce: a.sourceNonce, exporter: a.exporter, peerKey: fuzzKey, nowMillis: a.timestampMillis)) != nil
    require(!accepted, "an attestation nobody signed was accepted")
    _ = a.signedBytes
    return 0
}
