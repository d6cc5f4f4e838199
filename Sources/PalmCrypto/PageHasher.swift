import COpenSSLShims
import PalmWire

/// SHA-256 of many small buffers (guest pages) with one reused OpenSSL context and a digest
/// implementation fetched once — the per-call setup of `EVP_sha256()` costs more than hashing a
/// 4 KiB page on OpenSSL 3. Not thread-safe: one hasher per thread.
public final class PageHasher {
    private let ctx: OpaquePointer
    private let md: OpaquePointer

    public init() {
        guard let ctx = EVP_MD_CTX_new(), let md = EVP_MD_fetch(nil, "SHA256", nil) else {
            fatalError("OpenSSL: SHA-256 unavailable")
        }
        self.ctx = ctx
        self.md = md
    }

    deinit {
        EVP_MD_CTX_free(ctx)
        EVP_MD_free(md)
    }

    /// Writes the 32-byte digest of `bytes` to `out`.
    public func hash(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) {
        var len: UInt32 = 0
        EVP_DigestInit_ex2(ctx, md, nil)
        EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count)
        EVP_DigestFinal_ex(ctx, out, &len)
    }

    public func hash(_ bytes: UnsafeRawBufferPointer) -> Digest32 {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { hash(bytes, into: $0.baseAddress!) }
        return Digest32(prefixOf: out)
    }
}
