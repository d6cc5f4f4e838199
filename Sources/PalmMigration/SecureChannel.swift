import PalmCrypto
import PalmWire

/// The channel the engine runs over: an authenticated byte stream that can name its session
/// (for channel binding). The engine sees only this protocol; PalmTLS's channel is the production
/// one (its conformance is in PalmAgent, where the agents wire TLS to the engine).
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

/// What the engine keeps of a channel's failure: its words, and whether it was a certificate
/// refused (by either side) rather than a transport failure — what metrics count as a TLS refusal.
public struct ChannelFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    public var isCertificateRefusal: Bool

    public init(description: String, isCertificateRefusal: Bool) {
        self.description = description
        self.isCertificateRefusal = isCertificateRefusal
    }
}

/// An error a ``SecureChannel`` throws; ``MigrationError/wrap(_:)`` turns it into
/// ``MigrationError/channel(_:)``.
public protocol ChannelError: Error {
    var channelFailure: ChannelFailure { get }
}
