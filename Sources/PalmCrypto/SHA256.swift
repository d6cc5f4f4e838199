import COpenSSLShims
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// Incremental SHA-256 (OpenSSL EVP). One instance hashes one message; `finalize` ends it.
public struct SHA256 {
    private final class Context {
        let ctx: OpaquePointer
        init() {
            guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
            EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
            self.ctx = ctx
        }
        deinit { EVP_MD_CTX_free(ctx) }
    }

    private let context = Context()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        if let base = bytes.baseAddress, bytes.count > 0 { EVP_DigestUpdate(context.ctx, base, bytes.count) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func finalize() -> Digest32 {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 0
        EVP_DigestFinal_ex(context.ctx, &out, &len)
        return Digest32(prefixOf: out)
    }

    public static func hash(_ bytes: [UInt8]) -> Digest32 {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    /// Hashes a file in 1 MiB chunks. A read error throws: the digest of a file cut short by an
    /// I/O error would be a wrong measurement, not a failed one.
    public static func hash(file path: String) throws -> Digest32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CryptoError.unreadableFile(path: path, detail: String(cString: strerror(errno))) }
        defer { close(fd) }
        var h = SHA256()
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CryptoError.unreadableFile(path: path, detail: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            buf.withUnsafeBytes { h.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return h.finalize()
    }
}
