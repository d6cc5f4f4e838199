import PalmTLS
import PalmWire

/// The channel the engine runs over: an authenticated byte stream that can name its session
/// (for channel binding). PalmTLS's channel is the production one.
public protocol SecureChannel: ByteStream {
    /// 32 bytes unique to this session, equal on both ends (TLS exporter).
    func channelBinding() throws -> Digest32
    /// The peer's certificate identity.
    var peer: CertificateIdentity { get }
    /// The peer certificate's public key.
    var peerKey: VerifyingKey { get }
    func close()
}

extension TLSChannel: SecureChannel {
    public static let exporterLabel = "EXPORTER-palm-migration-v1"

    public func channelBinding() throws -> Digest32 {
        Digest32(try exportKeyingMaterial(label: TLSChannel.exporterLabel, length: 32)) ?? .zero
    }
}
