import COpenSSLShims

/// SHA-1, one-shot: only for the SHA-1 fields of formats palm reads (IMA's template digest,
/// which logs carry whatever bank is used). Never used to decide anything about trust.
public enum SHA1 {
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 0
        _ = bytes.withUnsafeBufferPointer { EVP_Digest($0.baseAddress, $0.count, &out, &length, EVP_sha1(), nil) }
        return out
    }
}
