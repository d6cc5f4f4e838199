/// MEMORY: a batch of pages of one round (layout in ``WireProtocol``).
///
/// ```text
///   round u32 | count u32 | codec u8 | count × ( pfn u64 | kind u8 ) | data
/// ```
/// All-zero pages travel as `zero` records without content. This is the hot path, so neither end
/// builds the frame as one piece: the sender writes the prefix (``MemoryBatchPrefix``: frame
/// header, batch header, table) and then the page data straight from the buffer the driver copied
/// the pages into; the receiver reads and validates the prefix (``MemoryBatchDecoder``) and then
/// reads the page data straight into the buffer it applies from.
public enum PageKind: UInt8, Sendable {
    case data = 0
    case zero = 1
}

/// A decoded, copied MEMORY message (tests, fuzzing and diagnostics; the engine uses the prefix
/// writer and the decoder's parts).
public struct MemoryBatch: Equatable, Sendable {
    public struct Page: Equatable, Sendable {
        public var pfn: UInt64
        /// `nil` for an all-zero page; in a compressed batch, `[]` for a data page (its content
        /// is inside ``MemoryBatch/compressedData``).
        public var data: [UInt8]?
        public init(pfn: UInt64, data: [UInt8]?) {
            self.pfn = pfn
            self.data = data
        }
    }
    public var round: UInt32
    public var pages: [Page]
    public var codec: PageCompression
    /// The compressed data section of a batch whose codec is not `none`.
    public var compressedData: [UInt8]

    public init(round: UInt32, pages: [Page], codec: PageCompression = .none, compressedData: [UInt8] = []) {
        self.round = round
        self.pages = pages
        self.codec = codec
        self.compressedData = compressedData
    }

    /// The complete frame.
    public func encodeFrame() -> [UInt8] {
        let prefix = MemoryBatchPrefix(capacityPages: pages.count)
        prefix.begin(round: round)
        var data: [UInt8] = []
        for page in pages {
            prefix.append(pfn: page.pfn, kind: page.data == nil ? .zero : .data)
            if codec == .none, let d = page.data { data += d }
        }
        if codec != .none { data = compressedData }
        return Array(prefix.finish(codec: codec, dataLength: data.count)) + data
    }
}

/// The part of a MEMORY frame before the page data — frame header, batch header, page table —
/// built in one buffer allocated once at its capacity, so a batch costs no allocation.
public final class MemoryBatchPrefix {
    private let buffer: UnsafeMutableRawBufferPointer
    public let capacityPages: Int
    /// Records appended since ``begin(round:)``.
    public private(set) var count = 0
    private var round: UInt32 = 0

    static let tableOffset = WireProtocol.headerSize + MemoryBatchDecoder.headerSize

    public init(capacityPages: Int) {
        self.capacityPages = capacityPages
        buffer = .allocate(byteCount: Self.tableOffset + capacityPages * MemoryBatchDecoder.recordSize, alignment: 8)
    }

    deinit { buffer.deallocate() }

    /// Starts a new batch for `round`.
    public func begin(round: UInt32) {
        self.round = round
        count = 0
    }

    /// Appends a table record.
    public func append(pfn: UInt64, kind: PageKind) {
        precondition(count < capacityPages, "MEMORY batch is full")
        let at = Self.tableOffset + count * MemoryBatchDecoder.recordSize
        buffer.storeBytes(of: pfn.bigEndian, toByteOffset: at, as: UInt64.self)
        buffer[at + 8] = kind.rawValue
        count += 1
    }

    /// Completes the headers for `dataLength` bytes of page data and returns the prefix, valid
    /// until the next ``begin(round:)``.
    public func finish(codec: PageCompression, dataLength: Int) -> UnsafeRawBufferPointer {
        let tableEnd = Self.tableOffset + count * MemoryBatchDecoder.recordSize
        let payload = tableEnd - WireProtocol.headerSize + dataLength
        var w = ByteWriter(capacity: WireProtocol.headerSize + MemoryBatchDecoder.headerSize)
        FrameHeader(type: .memory, length: UInt32(payload)).encode(into: &w)
        w.write(round)
        w.write(UInt32(count))
        w.write(codec.rawValue)
        w.bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return UnsafeRawBufferPointer(rebasing: buffer[0..<tableEnd])
    }
}

/// The batch header of a MEMORY payload.
public struct MemoryBatchHeader: Equatable, Sendable {
    public var round: UInt32
    public var count: Int
    public var codec: PageCompression
    /// Bytes of the payload after the header: the table, then the data.
    public var remaining: Int
}

/// Validates a MEMORY payload part by part. Every count is checked against the bytes the frame
/// actually holds and against ``WireLimits/maxBatchPages`` before anything is sized by it, every
/// pfn against the VM's page count and every kind before a single page is applied.
public enum MemoryBatchDecoder {
    /// round u32, count u32, codec u8.
    public static let headerSize = 9
    /// pfn u64, kind u8.
    public static let recordSize = 9

    /// Decodes the batch header of a payload of `payloadLength` bytes.
    public static func header(_ bytes: UnsafeRawBufferPointer, payloadLength: Int, limits: WireLimits) throws -> MemoryBatchHeader {
        var r = ByteReader(bytes)
        let round = try r.readUInt32("memory.round")
        let count = try r.readUInt32("memory.count")
        let rawCodec = try r.readUInt8("memory.codec")
        guard let codec = PageCompression(rawValue: rawCodec) else {
            throw WireError.invalidValue(field: "memory.codec", value: UInt64(rawCodec))
        }
        let remaining = payloadLength - headerSize
        let maximum = min(max(remaining, 0) / recordSize, limits.maxBatchPages)
        guard Int(count) <= maximum else {
            throw WireError.countExceedsPayload(field: "memory.count", count: UInt64(count), maximum: maximum)
        }
        return MemoryBatchHeader(round: round, count: Int(count), codec: codec, remaining: remaining)
    }

    /// Decodes `count` table records into `pfns` and `zero`, checking each; returns how many are
    /// data pages. Nothing is written for a table that fails.
    public static func table(_ bytes: UnsafeRawBufferPointer, count: Int, pageCount: UInt64,
                             pfns: UnsafeMutablePointer<UInt64>, zero: UnsafeMutablePointer<Bool>) throws -> Int {
        guard bytes.count >= count * recordSize else {
            throw WireError.truncated(field: "memory.table", needed: count * recordSize, available: bytes.count)
        }
        var dataPages = 0
        for i in 0..<count {
            let at = i * recordSize
            let pfn = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            guard pfn < pageCount else { throw WireError.pfnOutOfRange(pfn: pfn, pageCount: pageCount) }
            guard let kind = PageKind(rawValue: bytes[at + 8]) else {
                throw WireError.invalidValue(field: "memory.kind", value: UInt64(bytes[at + 8]))
            }
            pfns[i] = pfn
            zero[i] = kind == .zero
            if kind == .data { dataPages += 1 }
        }
        return dataPages
    }

    /// Checks that `length` bytes of data section fit `dataPages` pages: exactly their size
    /// uncompressed; compressed, at least one byte and less than their size (a batch is
    /// compressed only when that shrinks it).
    public static func checkData(length: Int, dataPages: Int, pageSize: Int, codec: PageCompression) throws {
        let raw = dataPages * pageSize
        switch codec {
        case .none:
            guard length == raw else {
                if length < raw { throw WireError.truncated(field: "memory.data", needed: raw, available: length) }
                throw WireError.trailingBytes(message: .memory, count: length - raw)
            }
        case .lz4, .zstd:
            guard dataPages > 0, length > 0, length < raw else {
                throw WireError.invalidValue(field: "memory.compressedLength", value: UInt64(max(length, 0)))
            }
        }
    }

    /// Decodes a whole payload held in memory into a copied ``MemoryBatch``.
    public static func decode(_ payload: UnsafeRawBufferPointer, pageSize: Int, pageCount: UInt64,
                              limits: WireLimits = .default) throws -> MemoryBatch {
        guard payload.count >= headerSize else {
            throw WireError.truncated(field: "memory.header", needed: headerSize, available: payload.count)
        }
        let h = try header(UnsafeRawBufferPointer(rebasing: payload[0..<headerSize]), payloadLength: payload.count, limits: limits)
        let body = UnsafeRawBufferPointer(rebasing: payload[headerSize...])
        var pfns = [UInt64](repeating: 0, count: h.count)
        var zero = [Bool](repeating: false, count: h.count)
        let dataPages = try pfns.withUnsafeMutableBufferPointer { p in
            try zero.withUnsafeMutableBufferPointer { z in
                try table(body, count: h.count, pageCount: pageCount, pfns: p.baseAddress!, zero: z.baseAddress!)
            }
        }
        let data = UnsafeRawBufferPointer(rebasing: body[(h.count * recordSize)...])
        try checkData(length: data.count, dataPages: dataPages, pageSize: pageSize, codec: h.codec)
        var pages: [MemoryBatch.Page] = []
        pages.reserveCapacity(h.count)
        var next = 0
        for i in 0..<h.count {
            if zero[i] {
                pages.append(.init(pfn: pfns[i], data: nil))
            } else if h.codec == .none {
                pages.append(.init(pfn: pfns[i], data: Array(data[(next * pageSize)..<((next + 1) * pageSize)])))
                next += 1
            } else {
                pages.append(.init(pfn: pfns[i], data: []))
            }
        }
        return MemoryBatch(round: h.round, pages: pages, codec: h.codec, compressedData: h.codec == .none ? [] : Array(data))
    }
}

/// Page content tests used on the send path.
public enum PageScan {
    /// True when every byte of `page` is zero (word-at-a-time).
    @inlinable
    public static func isZero(_ page: UnsafeRawBufferPointer) -> Bool {
        let words = page.count / 8
        if let base = page.baseAddress, Int(bitPattern: base) % 8 == 0 {
            let p = base.assumingMemoryBound(to: UInt64.self)
            var acc: UInt64 = 0
            var i = 0
            while i < words {
                acc |= p[i]
                if acc != 0 { return false }
                i += 1
            }
            for j in (words * 8)..<page.count where page[j] != 0 { return false }
            return true
        }
        for b in page where b != 0 { return false }
        return true
    }
}
