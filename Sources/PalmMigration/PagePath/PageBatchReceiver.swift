import Foundation
import PalmCompression
import PalmHypervisor
import PalmCrypto
import PalmWire

/// Receives the MEMORY frames of one page stream on the destination and applies them.
///
/// A batch is read in three parts, each checked before the next is read: the batch header, the
/// page table (every pfn and kind valid, so the exact size of the page data is known), then —
/// after the round barrier has opened — the page data, read from the TLS channel straight into
/// the buffer the driver writes from. Each page's digest leaf is computed as soon as its bytes
/// have arrived, while they are still in cache; nothing is hashed or copied a second time.
///
/// Rounds on one stream are consecutive: MEMORY of round r only after the stream's ROUND_END(r−1),
/// ROUND_END(r) only after ROUND_END(r−1). Buffers grow with the batches the (authenticated)
/// source sends, up to ``WireLimits/maxBatchPages`` pages.
final class PageBatchReceiver {
    let stream: Int
    private let channel: ByteStream
    private let session: IncomingSession
    private let pageSize: Int
    private var lastEnded = -1
    private let codec: PageCodec?
    private let hasher = PageHasher()
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: MemoryBatchDecoder.headerSize, alignment: 8)
    private var table = GrowingBuffer()
    private var data = GrowingBuffer()
    private var packed = GrowingBuffer()
    private var pfns: [UInt64] = []
    private var zero: [Bool] = []
    /// The pfns of the batch's data pages, in order (the k-th page of the data section).
    private var dataPFNs: [UInt64] = []
    /// The rounds this stream has ended.
    var roundsEnded: Int { lastEnded + 1 }

    init(stream: Int, channel: ByteStream, session: IncomingSession) {
        self.stream = stream
        self.channel = channel
        self.session = session
        pageSize = Int(session.config.pageSize)
        codec = session.config.compression == .none ? nil : PageCodec(session.config.compression)
    }

    deinit {
        header.deallocate()
        table.release()
        data.release()
        packed.release()
    }

    /// Reads and applies the MEMORY frame whose header (payload `length`) was just read.
    func receiveMemory(payloadLength length: Int) throws {
        guard length >= MemoryBatchDecoder.headerSize else {
            throw WireError.truncated(field: "memory.header", needed: MemoryBatchDecoder.headerSize, available: length)
        }
        try channel.readExactly(into: header)
        let h = try MemoryBatchDecoder.header(UnsafeRawBufferPointer(header), payloadLength: length, limits: session.limits)
        guard Int(h.round) == lastEnded + 1 else { throw WireError.invalidValue(field: "memory.round", value: UInt64(h.round)) }
        guard h.codec == .none || h.codec == session.config.compression else {
            throw WireError.invalidValue(field: "memory.codec", value: UInt64(h.codec.rawValue))
        }
        let tableBytes = h.count * MemoryBatchDecoder.recordSize
        let t = table.reserve(tableBytes)
        try channel.readExactly(into: t)
        if pfns.count < h.count {
            pfns = [UInt64](repeating: 0, count: h.count)
            zero = [Bool](repeating: false, count: h.count)
        }
        let dataPages = try pfns.withUnsafeMutableBufferPointer { p in
            try zero.withUnsafeMutableBufferPointer { z in
                try MemoryBatchDecoder.table(UnsafeRawBufferPointer(t), count: h.count, pageCount: session.config.pageCount,
                                             pfns: p.baseAddress!, zero: z.baseAddress!)
            }
        }
        dataPFNs.removeAll(keepingCapacity: true)
        for i in 0..<h.count where !zero[i] { dataPFNs.append(pfns[i]) }
        let dataLength = h.remaining - tableBytes
        try MemoryBatchDecoder.checkData(length: dataLength, dataPages: dataPages, pageSize: pageSize, codec: h.codec)

        try session.awaitRoundOpen(Int(h.round))
        if session.pagesReceived.load(ordering: .relaxed) == 0 { session.faults.reached(.precopy, session.logger) }
        let pages = data.reserve(dataPages * pageSize)
        if h.codec == .none {
            try readHashing(into: pages, dataPages: dataPages)
        } else {
            let compressed = packed.reserve(dataLength)
            try channel.readExactly(into: compressed)
            guard let codec else { throw WireError.invalidValue(field: "memory.codec", value: UInt64(h.codec.rawValue)) }
            do {
                try codec.decompress(UnsafeRawBufferPointer(compressed), into: pages)
            } catch let e as PageCodecError {
                throw MigrationError.corruptBatch(e)
            }
            hash(pages, from: 0, to: dataPages)
        }
        try pfns.withUnsafeBufferPointer { p in
            try zero.withUnsafeBufferPointer { z in
                let batchPFNs = UnsafeBufferPointer(rebasing: p[0..<h.count])
                let batchZero = UnsafeBufferPointer(rebasing: z[0..<h.count])
                for i in 0..<h.count where batchZero[i] { session.digest.recordZero(pfn: batchPFNs[i]) }
                try session.domain.writePages(IncomingPages(pfns: batchPFNs, zero: batchZero, data: UnsafeRawBufferPointer(pages),
                                                            pageSize: pageSize))
            }
        }
        session.pagesReceived.wrappingIncrement(by: UInt64(h.count), ordering: .relaxed)
    }

    /// This stream's ROUND_END(round).
    func roundEnded(_ round: UInt32) throws {
        guard Int(round) == lastEnded + 1 else { throw WireError.invalidValue(field: "roundEnd.round", value: UInt64(round)) }
        lastEnded = Int(round)
        if stream > 0 { session.streamEnded(stream, round: lastEnded) }
    }

    /// Reads the page data record by record, hashing each page as soon as it is complete.
    private func readHashing(into pages: UnsafeMutableRawBufferPointer, dataPages: Int) throws {
        var filled = 0, hashed = 0
        while filled < pages.count {
            let n = try channel.read(into: UnsafeMutableRawBufferPointer(rebasing: pages[filled...]))
            guard n > 0 else { throw WireError.truncated(field: "memory.data", needed: pages.count, available: filled) }
            filled += n
            let complete = filled / pageSize
            if complete > hashed {
                hash(pages, from: hashed, to: complete)
                hashed = complete
            }
        }
    }

    /// Records the digest leaves of data pages `from ..< to`.
    private func hash(_ pages: UnsafeMutableRawBufferPointer, from: Int, to: Int) {
        for k in from..<to {
            session.digest.record(pfn: dataPFNs[k], page: UnsafeRawBufferPointer(rebasing: pages[(k * pageSize)..<((k + 1) * pageSize)]),
                                  hasher: hasher)
        }
    }
}

/// A heap buffer that grows to the largest size asked of it and is reused.
struct GrowingBuffer {
    private var storage = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    mutating func reserve(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if storage.count < count {
            storage.deallocate()
            storage = .allocate(byteCount: count, alignment: 64)
        }
        return UnsafeMutableRawBufferPointer(rebasing: storage[0..<count])
    }

    func release() { storage.deallocate() }
}
