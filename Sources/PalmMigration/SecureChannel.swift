import PalmTLS
import PalmWire

/// The channel the engine runs over: an authenticated byte stream that can name its session
/// (for channel binding). PalmTLS's channel is the production one.
public protocol SecureChannel: ByteStream {
    /// 32 bytes unique to this session, equal on both ends (TLS exporter). Throws when the
    /// exporter cannot be computed — a binding is never replaced by a constant.
    func channelBinding() throws -> Digest32
    /// RFC 8446 §7.5 keying material of this session for `label` and `context`.
    func exportKeyingMaterial(label: String, context: [UInt8]?, length: Int) throws -> [UInt8]
    /// The peer's certificate identity.
    var peer: CertificateIdentity { get }
    /// The peer certificate's public key.
    var peerKey: VerifyingKey { get }
    /// The transport's round-trip time in seconds (its lowest observed), when the platform reports one.
    var roundTripTime: Double? { get }
    /// Owner only: bounds each read and write from now on by `seconds`.
    func setIOTimeout(_ seconds: Double)
    /// Owner only: closes the channel.
    func close()
    /// Any thread: wakes the owner from a blocked read — and, unless `keepWriting`, a blocked
    /// write — with an error.
    func interrupt(keepWriting: Bool)
}

extension SecureChannel {
    /// Wakes the owner from any blocked read or write.
    public func interrupt() { interrupt(keepWriting: false) }
}

extension TLSChannel: SecureChannel {
    public static let exporterLabel = "EXPORTER-palm-migration-v1"

    public func channelBinding() throws -> Digest32 {
        let bytes = try exportKeyingMaterial(label: TLSChannel.exporterLabel, context: nil, length: Digest32.size)
        guard let binding = Digest32(bytes) else { throw TLSError.tlsFailure(detail: "exporter returned \(bytes.count) bytes") }
        return binding
    }
}
