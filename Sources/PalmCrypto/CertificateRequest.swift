import COpenSSLShims

/// A PKCS#10 certificate request (PEM) for a key, signed by it — the key's proof of possession
/// for the CA. How a key that cannot leave its TPM gets a certificate: the TPM signs the request,
/// `certs/palm-ca host NAME --csr FILE` issues the certificate.
public enum CertificateRequest {
    /// A request with subject `O=palm, CN=commonName` for `key`'s public half, signed by `key`.
    public static func pem(commonName: String, key: SigningKey) throws -> String {
        guard let request = X509_REQ_new() else { throw CryptoError.failure(detail: "X509_REQ_new") }
        defer { X509_REQ_free(request) }
        func add(_ name: OpaquePointer, _ field: String, _ value: String) -> Bool {
            let bytes = Array(value.utf8)
            return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, bytes, Int32(bytes.count), -1, 0) == 1
        }
        guard let name = X509_REQ_get_subject_name(request), add(name, "O", "palm"), add(name, "CN", commonName),
              X509_REQ_set_version(request, 0) == 1,
              X509_REQ_set_pubkey(request, key.key) == 1 else {
            throw CryptoError.failure(detail: "cannot build a certificate request: \(OpenSSLErrors.summary())")
        }
        guard X509_REQ_sign(request, key.key, EVP_sha256()) > 0 else {
            if let failure = key.lastExternalFailure {
                _ = OpenSSLErrors.drain()
                throw failure
            }
            throw CryptoError.failure(detail: "cannot sign the certificate request: \(OpenSSLErrors.summary())")
        }
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.failure(detail: "BIO_new") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_X509_REQ(bio, request) == 1 else { throw CryptoError.failure(detail: "PEM_write_bio_X509_REQ") }
        var data: UnsafeMutablePointer<CChar>?
        let n = palm_bio_get_mem_data(bio, &data)
        guard n > 0, let data else { throw CryptoError.failure(detail: "empty certificate request") }
        return String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
    }
}
