import FuzzSupport
import PalmCompression
import PalmWire

/// MEMORY payloads, decoded whole and part by part as the engine does, and compressed data
/// sections decompressed into exactly the size their page table promises.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMemoryBatch(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = input(start, count)
    let limits = WireLimits(maxBatchPages: 64)
    bytes.withUnsafeBytes { payload in
        if let batch = try? MemoryBatchDecoder.decode(payload, pageSize: 4096, pageCount: 1024, limits: limits), batch.codec != .none {
            let dataPages = batch.pages.filter { $0.data != nil }.count
            var out = [UInt8](repeating: 0, count: dataPages * 4096)
            let codec = PageCodec(batch.codec)
            _ = try? batch.compressedData.withUnsafeBytes { c in try out.withUnsafeMutableBytes { try codec.decompress(c, into: $0) } }
        }
        guard payload.count >= MemoryBatchDecoder.headerSize,
              let h = try? MemoryBatchDecoder.header(UnsafeRawBufferPointer(rebasing: payload[0..<9]), payloadLength: payload.count, limits: limits)
        else { return }
        var pfns = [UInt64](repeating: 0, count: h.count), zero = [Bool](repeating: false, count: h.count)
        let body = UnsafeRawBufferPointer(rebasing: payload[9...])
        guard let data = try? pfns.withUnsafeMutableBufferPointer({ p in try zero.withUnsafeMutableBufferPointer { z in
            try MemoryBatchDecoder.table(body, count: h.count, pageCount: 1024, pfns: p.baseAddress!, zero: z.baseAddress!) } }) else { return }
        require(data <= h.count, "more data pages than records")
        require(pfns.allSatisfy { $0 < 1024 }, "a pfn outside the VM passed the table")
        _ = try? MemoryBatchDecoder.checkData(length: h.remaining - h.count * 9, dataPages: data, pageSize: 4096, codec: h.codec)
    }
    // The input itself as a compressed section, under both codecs.
    for codec in [PageCompression.lz4, .zstd] {
        var out = [UInt8](repeating: 0, count: 4 * 4096)
        _ = try? bytes.withUnsafeBytes { c in try out.withUnsafeMutableBytes { try PageCodec(codec).decompress(c, into: $0) } }
    }
    return 0
}
