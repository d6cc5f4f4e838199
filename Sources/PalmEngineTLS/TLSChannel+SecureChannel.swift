import PalmMigration
import PalmTLS
import PalmWire

/// PalmTLS's channel is the engine's production ``SecureChannel``: the one place TLS and the
/// engine meet, so the engine itself never imports TLS (and palm-bench gets the binding without
/// the agents' Xen driver).
extension TLSChannel: SecureChannel {
    /// The RFC 8446 exporter label of palm's channel binding (attestation, JOIN proofs).
    public static let exporterLabel = "EXPORTER-palm-migration-v1"

    public func channelBinding() throws -> Digest32 {
        let bytes = try exportKeyingMaterial(label: TLSChannel.exporterLabel, context: nil, length: Digest32.size)
        guard let binding = Digest32(bytes) else { throw TLSError.tlsFailure(detail: "exporter returned \(bytes.count) bytes") }
        return binding
    }
}

extension TLSError: ChannelError {
    public var channelFailure: ChannelFailure {
        ChannelFailure(description: description, isCertificateRefusal: isCertificateRefusal)
    }
}
