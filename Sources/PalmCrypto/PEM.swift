import COpenSSLShims
#if canImport(Glibc)
import Glibc
#endif

/// Loading PEM files with errors that name the file.
package enum PEM {
    package static func openBIO(_ path: String) throws -> OpaquePointer {
        guard access(path, R_OK) == 0 else {
            throw CryptoError.unreadableFile(path: path, detail: String(cString: strerror(errno)))
        }
        guard let bio = BIO_new_file(path, "r") else {
            throw CryptoError.unreadableFile(path: path, detail: OpenSSLErrors.summary())
        }
        return bio
    }

    /// The first certificate in `path` (caller frees with X509_free).
    package static func readCertificate(_ path: String) throws -> OpaquePointer {
        let bio = try openBIO(path)
        defer { BIO_free(bio) }
        guard let cert = PEM_read_bio_X509(bio, nil, nil, nil) else {
            throw CryptoError.invalidCertificate(path: path, detail: OpenSSLErrors.summary("no certificate found"))
        }
        return cert
    }

    /// The first certificate in PEM text (caller frees with X509_free).
    package static func readCertificate(pem: String) throws -> OpaquePointer {
        guard let bio = pem.withCString({ BIO_new_mem_buf($0, Int32(strlen($0))) }) else {
            throw CryptoError.invalidCertificate(path: "<pem>", detail: "cannot read")
        }
        defer { BIO_free(bio) }
        guard let cert = PEM_read_bio_X509(bio, nil, nil, nil) else {
            throw CryptoError.invalidCertificate(path: "<pem>", detail: OpenSSLErrors.summary("no certificate"))
        }
        return cert
    }

    /// A private key (caller frees with EVP_PKEY_free).
    package static func readPrivateKey(_ path: String) throws -> OpaquePointer {
        let bio = try openBIO(path)
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            throw CryptoError.invalidPrivateKey(path: path, detail: OpenSSLErrors.summary("no private key found"))
        }
        return key
    }

    /// All CRLs in `path` (caller frees each with X509_CRL_free).
    package static func readCRLs(_ path: String) throws -> [OpaquePointer] {
        let bio = try openBIO(path)
        defer { BIO_free(bio) }
        var crls: [OpaquePointer] = []
        while let crl = PEM_read_bio_X509_CRL(bio, nil, nil, nil) { crls.append(crl) }
        _ = OpenSSLErrors.drain()  // the final read always fails with "no start line"
        guard !crls.isEmpty else { throw CryptoError.invalidCRL(path: path, detail: "no CRL found") }
        return crls
    }

    package static func isECDSA(_ key: OpaquePointer) -> Bool {
        EVP_PKEY_get_base_id(key) == palm_evp_pkey_ec()
    }
}
