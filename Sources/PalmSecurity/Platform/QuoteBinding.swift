import PalmCrypto
import PalmWire

/// The qualifying data a TPM quote is asked for: what makes a quote fresh and bound to one use.
/// Domain-separated, so a quote made for one purpose never verifies for another.
public enum QuoteBinding {
    /// A migration's quote: SHA-256("palm-tpm-quote-v1" ‖ the source's nonce ‖ the session's TLS
    /// exporter ‖ the ticket's id) — fresh (the nonce), for this TLS session only (the exporter:
    /// a relay through another connection has another), for this migration only (the ticket).
    public static func migration(nonce: Digest32, exporter: Digest32, ticketID: [UInt8]) -> [UInt8] {
        SHA256.hash(Array("palm-tpm-quote-v1".utf8) + nonce.bytes + exporter.bytes + ticketID).bytes
    }

    /// A continuous-attestation quote: SHA-256("palm-tpm-heartbeat-v1" ‖ the coordinator's nonce ‖
    /// the host's name).
    public static func heartbeat(nonce: [UInt8], host: String) -> [UInt8] {
        SHA256.hash(Array("palm-tpm-heartbeat-v1".utf8) + nonce + Array(host.utf8)).bytes
    }

    /// The TLS key's certification: SHA-256("palm-tpm-tls-key-v1" ‖ the certificate's
    /// SubjectPublicKeyInfo) — the attestation key says "this key of mine is the one that
    /// certificate names". Not per session: the key's attributes cannot change, and the TLS
    /// handshake itself proves the key is in use now.
    public static func tlsKey(subjectPublicKeyInfo spki: [UInt8]) -> [UInt8] {
        SHA256.hash(Array("palm-tpm-tls-key-v1".utf8) + spki).bytes
    }
}
