import PalmCrypto
import PalmWire

/// How an extra page stream proves it belongs to a session (JOIN):
///
/// ```text
///   join key = TLS exporter of the session channel ("EXPORTER-palm-stream-join", context = session token)
///   proof    = HMAC-SHA-256(join key, stream index u8 ‖ the joining connection's own exporter)
/// ```
/// Only the two ends of the session channel know the join key, and the proof is good for one
/// stream index on one TLS connection: it cannot be replayed on another connection, moved to
/// another index, or made by any host that is not the session's source (the destination also
/// requires the joining certificate to be the session channel's).
public enum StreamJoin {
    public static let label = "EXPORTER-palm-stream-join"

    /// The session's join key, computed once per end on the session channel's own thread.
    public static func key(session: SecureChannel, token: [UInt8]) throws -> [UInt8] {
        try session.exportKeyingMaterial(label: label, context: token, length: 32)
    }

    /// The proof stream `stream` on `channel` presents.
    public static func proof(key: [UInt8], stream: Int, channel: SecureChannel) throws -> Digest32 {
        HMACSHA256.authenticate(key: key, message: [UInt8(truncatingIfNeeded: stream)] + (try channel.channelBinding()).bytes)
    }
}
