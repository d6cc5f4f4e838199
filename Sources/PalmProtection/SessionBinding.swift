import PalmWire

/// What the two ends of one migration session share, and what every piece of evidence a
/// protection produces is bound to: the source's fresh nonce from HELLO and the session channel's
/// TLS exporter value (RFC 8446 §7.5). Evidence bound to one session never verifies in another.
public struct SessionBinding: Sendable, Equatable {
    /// 32 random bytes the source chose for this session (HELLO).
    public var nonce: Digest32
    /// The session channel's exporter value: both ends of *this* TLS connection compute it.
    public var exporter: Digest32

    public init(nonce: Digest32, exporter: Digest32) {
        self.nonce = nonce
        self.exporter = exporter
    }
}
