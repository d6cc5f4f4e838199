/// A TLS alert as defined by RFC 8446 §6, as received from a peer.
public enum TLSAlert: Equatable, Sendable, CustomStringConvertible {
    case badRecordMAC, handshakeFailure, badCertificate, unsupportedCertificate, certificateRevoked
    case certificateExpired, certificateUnknown, illegalParameter, unknownCA, accessDenied, decodeError
    case decryptError, protocolVersion, insufficientSecurity, internalError, certificateRequired
    case other(UInt8)

    public init(code: UInt8) {
        switch code {
        case 20: self = .badRecordMAC
        case 40: self = .handshakeFailure
        case 42: self = .badCertificate
        case 43: self = .unsupportedCertificate
        case 44: self = .certificateRevoked
        case 45: self = .certificateExpired
        case 46: self = .certificateUnknown
        case 47: self = .illegalParameter
        case 48: self = .unknownCA
        case 49: self = .accessDenied
        case 50: self = .decodeError
        case 51: self = .decryptError
        case 70: self = .protocolVersion
        case 71: self = .insufficientSecurity
        case 80: self = .internalError
        case 116: self = .certificateRequired
        default: self = .other(code)
        }
    }

    public var description: String {
        switch self {
        case .badRecordMAC: return "bad_record_mac"
        case .handshakeFailure: return "handshake_failure"
        case .badCertificate: return "bad_certificate"
        case .unsupportedCertificate: return "unsupported_certificate"
        case .certificateRevoked: return "certificate_revoked"
        case .certificateExpired: return "certificate_expired"
        case .certificateUnknown: return "certificate_unknown"
        case .illegalParameter: return "illegal_parameter"
        case .unknownCA: return "unknown_ca"
        case .accessDenied: return "access_denied"
        case .decodeError: return "decode_error"
        case .decryptError: return "decrypt_error"
        case .protocolVersion: return "protocol_version"
        case .insufficientSecurity: return "insufficient_security"
        case .internalError: return "internal_error"
        case .certificateRequired: return "certificate_required"
        case let .other(c): return "alert \(c)"
        }
    }
}
