import PalmCrypto
import COpenSSLShims
#if canImport(Glibc)
import Glibc
#endif

/// Turns an OpenSSL failure into the ``TLSError`` that names it.
enum TLSFailure {
    static func map(ssl: OpaquePointer, sslError: Int32, savedErrno: Int32, operation: String,
                    expectedServerName: String?) -> TLSError {
        switch sslError {
        case SSL_ERROR_ZERO_RETURN:
            return .peerClosed
        case SSL_ERROR_SYSCALL:
            let entries = OpenSSLErrors.drain()
            if let mapped = fromQueue(entries, ssl: ssl, expectedServerName: expectedServerName) { return mapped }
            if savedErrno == 0 || savedErrno == ECONNRESET || savedErrno == EPIPE {
                return .connectionLost(detail: savedErrno == 0 ? "unexpected end of stream during \(operation)"
                                                               : String(cString: strerror(savedErrno)))
            }
            return .socketFailure(operation: operation, errno: savedErrno)
        default:
            let entries = OpenSSLErrors.drain()
            if let mapped = fromQueue(entries, ssl: ssl, expectedServerName: expectedServerName) { return mapped }
            let verify = Int32(SSL_get_verify_result(ssl))
            if verify != X509_V_OK { return fromVerifyResult(verify, expectedServerName: expectedServerName) }
            let text = entries.map(\.text).joined(separator: "; ")
            return operation.contains("handshake") ? .handshakeFailed(detail: text) : .tlsFailure(detail: text)
        }
    }

    private static func fromQueue(_ entries: [OpenSSLErrors.Entry], ssl: OpaquePointer,
                                  expectedServerName: String?) -> TLSError? {
        for e in entries where e.library == ERR_LIB_SSL {
            switch e.reason {
            case SSL_AD_REASON_OFFSET..<(SSL_AD_REASON_OFFSET + 256):
                let alert = TLSAlert(code: UInt8(e.reason - SSL_AD_REASON_OFFSET))
                if alert == .protocolVersion { return .protocolVersion(detail: "the peer sent a protocol_version alert") }
                return .rejectedByPeer(alert)
            case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
                return .recordIntegrity
            case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
                return .noPeerCertificate
            case SSL_R_UNSUPPORTED_PROTOCOL, SSL_R_WRONG_VERSION_NUMBER, SSL_R_NO_PROTOCOLS_AVAILABLE,
                 SSL_R_UNKNOWN_PROTOCOL, SSL_R_VERSION_TOO_LOW, SSL_R_VERSION_TOO_HIGH, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
                return .protocolVersion(detail: e.text)
            case SSL_R_UNEXPECTED_EOF_WHILE_READING:
                return .connectionLost(detail: "unexpected end of stream")
            case SSL_R_CERTIFICATE_VERIFY_FAILED:
                return fromVerifyResult(Int32(SSL_get_verify_result(ssl)), expectedServerName: expectedServerName)
            default:
                continue
            }
        }
        return nil
    }

    static func fromVerifyResult(_ code: Int32, expectedServerName: String?) -> TLSError {
        let text = String(cString: X509_verify_cert_error_string(Int(code)))
        switch code {
        case X509_V_ERR_CERT_HAS_EXPIRED: return .certificateExpired
        case X509_V_ERR_CERT_NOT_YET_VALID: return .certificateNotYetValid
        case X509_V_ERR_CERT_REVOKED: return .certificateRevoked
        case palm_x509_v_err_application_verification(): return .wrongKeyType
        case X509_V_ERR_INVALID_PURPOSE: return .wrongPurpose
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
            return .serverNameMismatch(expected: expectedServerName ?? "")
        case X509_V_ERR_UNABLE_TO_GET_CRL, X509_V_ERR_CRL_HAS_EXPIRED, X509_V_ERR_CRL_NOT_YET_VALID,
             X509_V_ERR_CRL_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
            return .crlUnavailable(detail: text)
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
             X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_SIGNATURE_FAILURE:
            return .unknownCA(detail: text)
        default:
            return .certificateRejected(code: code, reason: text)
        }
    }
}
