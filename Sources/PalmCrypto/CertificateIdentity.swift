import COpenSSLShims
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// Who a certificate names: subject, subjectAltNames, the role it claims and the SHA-256
/// fingerprint of the DER certificate. The fingerprint is what tickets and evidence bind to; the
/// role claim is present only when the certificate carries exactly one `palm:role:` URI value
/// x.
public struct CertificateIdentity: Equatable, Sendable, CustomStringConvertible {
    /// RFC 2253 subject, e.g. `O=palm,CN=node-a`.
    public let subject: String
    public let commonName: String?
    public let dnsNames: [String]
    public let ipAddresses: [String]
    public let uris: [String]
    /// The value of the certificate's one `palm:role:` URI; nil with none, or with several that differ.
    public let roleClaim: String?
    /// The SAN URI prefix that carries a role (certs/palm-ca writes it; the subject's OU is never consulted).
    public static let roleURIPrefix = "palm:role:"
    /// SHA-256 over the DER encoding of the certificate.
    public let fingerprint: Digest32
    /// Validity end, seconds since the Unix epoch.
    public let notAfter: Int64
    /// The certificate itself, PEM-encoded (kept as evidence; verifies signatures offline).
    public let pem: String

    public var description: String {
        "\(commonName ?? subject) [\(roleClaim ?? "no role")] sha256:\(fingerprint.hex.prefix(16))…"
    }

    /// Reads the identity of an X509 certificate.
    package init(certificate: OpaquePointer) {
        let name = X509_get_subject_name(certificate)
        subject = CertificateIdentity.rfc2253(name)
        commonName = CertificateIdentity.commonName(name)
        var dns: [String] = [], ips: [String] = [], uris: [String] = []
        if let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) {
            let names = OpaquePointer(raw)
            for i in 0..<palm_general_names_count(names) {
                guard let gn = palm_general_names_get(names, i) else { continue }
                switch gn.pointee.type {
                case GEN_DNS: dns.append(CertificateIdentity.string(gn.pointee.d.dNSName))
                case GEN_URI: uris.append(CertificateIdentity.string(gn.pointee.d.uniformResourceIdentifier))
                case GEN_IPADD:
                    if let ip = CertificateIdentity.ipString(gn.pointee.d.iPAddress) { ips.append(ip) }
                default: break
                }
            }
            palm_general_names_free(names)
        }
        dnsNames = dns
        ipAddresses = ips
        self.uris = uris
        let roles = Set(uris.filter { $0.hasPrefix(Self.roleURIPrefix) }.map { String($0.dropFirst(Self.roleURIPrefix.count)) })
        roleClaim = roles.count == 1 ? roles.first : nil

        var md = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var len: UInt32 = 0
        X509_digest(certificate, EVP_sha256(), &md, &len)
        fingerprint = Digest32(prefixOf: md)

        pem = CertificateIdentity.pemText(certificate)
        var t = tm()
        if let na = X509_get0_notAfter(certificate), ASN1_TIME_to_tm(na, &t) == 1 {
            notAfter = Int64(timegm(&t))
        } else {
            notAfter = 0
        }
    }

    /// Loads the first certificate of a PEM file.
    public static func load(pemFile path: String) throws -> CertificateIdentity {
        let cert = try PEM.readCertificate(path)
        defer { X509_free(cert) }
        return CertificateIdentity(certificate: cert)
    }

    /// The identity of a certificate given as PEM text.
    public static func load(pem: String) throws -> CertificateIdentity {
        let cert = try PEM.readCertificate(pem: pem)
        defer { X509_free(cert) }
        return CertificateIdentity(certificate: cert)
    }

    package static func rfc2253(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        X509_NAME_print_ex(bio, name, 0, palm_xn_flag_rfc2253())
        var data: UnsafeMutablePointer<CChar>?
        let n = palm_bio_get_mem_data(bio, &data)
        guard let data, n > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    }

    private static func pemText(_ cert: OpaquePointer) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        PEM_write_bio_X509(bio, cert)
        var data: UnsafeMutablePointer<CChar>?
        let n = palm_bio_get_mem_data(bio, &data)
        guard let data, n > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    }

    private static func commonName(_ name: OpaquePointer?) -> String? {
        guard let name else { return nil }
        let idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
        guard idx >= 0, let entry = X509_NAME_get_entry(name, idx), let data = X509_NAME_ENTRY_get_data(entry) else {
            return nil
        }
        var out: UnsafeMutablePointer<UInt8>?
        let n = ASN1_STRING_to_UTF8(&out, data)
        guard n >= 0, let out else { return nil }
        defer { palm_openssl_free(out) }
        return String(decoding: UnsafeBufferPointer(start: out, count: Int(n)), as: UTF8.self)
    }

    private static func string(_ s: UnsafeMutablePointer<ASN1_STRING>?) -> String {
        guard let s, let p = ASN1_STRING_get0_data(s) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(ASN1_STRING_length(s))), as: UTF8.self)
    }

    private static func ipString(_ s: UnsafeMutablePointer<ASN1_STRING>?) -> String? {
        guard let s, let p = ASN1_STRING_get0_data(s) else { return nil }
        let n = Int(ASN1_STRING_length(s))
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch n {
        case 4: return inet_ntop(AF_INET, p, &buf, socklen_t(buf.count)).map { String(cString: $0) }
        case 16: return inet_ntop(AF_INET6, p, &buf, socklen_t(buf.count)).map { String(cString: $0) }
        default: return nil
        }
    }
}
