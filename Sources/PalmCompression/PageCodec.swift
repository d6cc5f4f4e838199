import CLZ4
import CZstd
import PalmWire

/// Compresses and decompresses the page data of MEMORY batches with one codec (Debian's liblz4
/// and libzstd). One instance per stream thread: it holds the codec's context.
///
/// Guarantees: ``compress(_:into:)`` never writes past its output and reports a batch that does
/// not shrink as `nil` (the sender then sends it raw); ``decompress(_:into:)`` produces exactly
/// the size the batch's page table promises or throws ``PageCodecError/corruptBatch(codec:detail:)`` —
/// it never writes past its output and never allocates by a size read from the input.
public final class PageCodec {
    public let codec: PageCompression
    private let cctx: OpaquePointer?
    private let dctx: OpaquePointer?
    /// zstd's level: 1 is its fastest regular level (the link, not the CPU, is what compression is for).
    public static let zstdLevel: Int32 = 1

    public init(_ codec: PageCompression) {
        self.codec = codec
        switch codec {
        case .zstd:
            cctx = ZSTD_createCCtx()
            dctx = ZSTD_createDCtx()
        case .none, .lz4:
            cctx = nil
            dctx = nil
        }
    }

    deinit {
        if let cctx { ZSTD_freeCCtx(cctx) }
        if let dctx { ZSTD_freeDCtx(dctx) }
    }

    /// Compresses `input` into `output`; returns the compressed length, or `nil` when the result
    /// would not be smaller than the input (or the codec is `none`).
    public func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard let src = input.baseAddress, let dst = output.baseAddress, input.count > 1 else { return nil }
        let limit = min(output.count, input.count - 1)
        switch codec {
        case .none:
            return nil
        case .lz4:
            guard input.count <= Int(Int32.max) else { return nil }
            let n = LZ4_compress_default(src.assumingMemoryBound(to: CChar.self), dst.assumingMemoryBound(to: CChar.self),
                                         Int32(input.count), Int32(limit))
            return n > 0 ? Int(n) : nil
        case .zstd:
            guard let cctx else { return nil }
            let n = ZSTD_compressCCtx(cctx, dst, limit, src, input.count, Self.zstdLevel)
            return ZSTD_isError(n) != 0 || n == 0 ? nil : n
        }
    }

    /// Decompresses `input` into exactly `output.count` bytes.
    public func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws {
        guard let src = input.baseAddress, let dst = output.baseAddress, input.count > 0, output.count > 0 else {
            throw PageCodecError.corruptBatch(codec: codec, detail: "empty input or output")
        }
        switch codec {
        case .none:
            throw PageCodecError.corruptBatch(codec: codec, detail: "a raw batch is not decompressed")
        case .lz4:
            guard input.count <= Int(Int32.max), output.count <= Int(Int32.max) else {
                throw PageCodecError.corruptBatch(codec: codec, detail: "batch too large")
            }
            let n = LZ4_decompress_safe(src.assumingMemoryBound(to: CChar.self), dst.assumingMemoryBound(to: CChar.self),
                                        Int32(input.count), Int32(output.count))
            guard n == Int32(output.count) else {
                throw PageCodecError.corruptBatch(codec: codec, detail: n < 0 ? "malformed lz4 block (code \(n))"
                                                  : "decompressed to \(n) bytes, the page table says \(output.count)")
            }
        case .zstd:
            guard let dctx else { throw PageCodecError.corruptBatch(codec: codec, detail: "no zstd context") }
            let n = ZSTD_decompressDCtx(dctx, dst, output.count, src, input.count)
            if ZSTD_isError(n) != 0 {
                throw PageCodecError.corruptBatch(codec: codec, detail: String(cString: ZSTD_getErrorName(n)))
            }
            guard n == output.count else {
                throw PageCodecError.corruptBatch(codec: codec, detail: "decompressed to \(n) bytes, the page table says \(output.count)")
            }
        }
    }
}

/// A MEMORY batch whose compressed data does not decode to the pages its table announces.
public enum PageCodecError: Error, Equatable, Sendable, CustomStringConvertible {
    case corruptBatch(codec: PageCompression, detail: String)

    public var description: String {
        switch self {
        case let .corruptBatch(codec, detail): return "corrupt \(codec)-compressed MEMORY batch: \(detail)"
        }
    }
}
