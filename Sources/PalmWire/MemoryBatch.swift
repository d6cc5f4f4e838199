/// MEMORY: a batch of pages of one round.
///
/// ```text
///   round u32 | count u32 | count × ( pfn u64 | kind u8 | pageSize bytes if kind == data )
/// ```
/// All-zero pages travel as a `zero` record without content. This is the hot path, so encoding
/// writes straight into a reusable frame buffer (``MemoryBatchEncoder``) and decoding hands out
/// views into the received payload (``MemoryBatchDecoder``) — no page is copied by this layer.
public enum PageKind: UInt8, Sendable {
    case data = 0
    case zero = 1
}

/// A decoded, copied MEMORY message (tests and diagnostics; the engine uses the views).
public struct MemoryBatch: Equatable, Sendable {
    public struct Page: Equatable, Sendable {
        public var pfn: UInt64
        /// `nil` for an all-zero page.
        public var data: [UInt8]?
        public init(pfn: UInt64, data: [UInt8]?) {
            self.pfn = pfn
            self.data = data
        }
    }
    public var round: UInt32
    public var pages: [Page]

    public init(round: UInt32, pages: [Page]) {
        self.round = round
        self.pages = pages
    }
}

/// Builds one MEMORY frame in place: header, batch header, then page records appended one by one.
public struct MemoryBatchEncoder {
    public private(set) var writer: ByteWriter
    public let pageSize: Int
    public private(set) var pageCount: Int = 0
    private let countOffset = WireProtocol.headerSize + 4

    public init(pageSize: Int, capacityPages: Int) {
        self.pageSize = pageSize
        writer = ByteWriter(capacity: WireProtocol.headerSize + 8 + capacityPages * (9 + pageSize))
    }

    /// Starts a new frame for `round`, discarding any previous content (capacity is kept).
    public mutating func begin(round: UInt32) {
        writer.removeAll()
        FrameHeader(type: .memory, length: 0).encode(into: &writer)
        writer.write(round)
        writer.write(UInt32(0))
        pageCount = 0
    }

    /// Appends a page; an all-zero page is sent as a zero record.
    public mutating func append(pfn: UInt64, page: UnsafeRawBufferPointer) {
        precondition(page.count == pageSize, "page buffer must be exactly one page")
        writer.write(pfn)
        if PageScan.isZero(page) {
            writer.write(PageKind.zero.rawValue)
        } else {
            writer.write(PageKind.data.rawValue)
            writer.write(raw: page)
        }
        pageCount += 1
    }

    /// Appends a page the caller already knows is not all zeroes.
    public mutating func appendData(pfn: UInt64, page: UnsafeRawBufferPointer) {
        writer.write(pfn)
        writer.write(PageKind.data.rawValue)
        writer.write(raw: page)
        pageCount += 1
    }

    /// The content of the page appended last, as it stands in the frame (what the receiver gets).
    public func withLastPage<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try writer.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[($0.count - pageSize)...])) }
    }

    /// Appends a page record known to be all zeroes.
    public mutating func appendZero(pfn: UInt64) {
        writer.write(pfn)
        writer.write(PageKind.zero.rawValue)
        pageCount += 1
    }

    /// Patches the counts and returns the complete frame.
    public mutating func finish() -> [UInt8] {
        writer.patch(UInt32(pageCount), at: countOffset)
        writer.patch(UInt32(writer.count - WireProtocol.headerSize), at: WireProtocol.headerSize - 4)
        return writer.bytes
    }

    /// Bytes the frame occupies so far.
    public var encodedSize: Int { writer.count }
}

/// Validates a MEMORY payload and visits its pages as views into the payload.
public enum MemoryBatchDecoder {
    /// Smallest record: pfn + kind.
    static let minimumRecordSize = 9

    /// Calls `body(pfn, page)` for every record in order; `page` is `nil` for a zero page and is
    /// valid only during the call. Throws before calling `body` for a record that is malformed;
    /// pfns are checked against `pageCount`.
    public static func forEachPage(in payload: UnsafeRawBufferPointer, pageSize: Int, pageCount: UInt64,
                                   _ body: (UInt64, UnsafeRawBufferPointer?) throws -> Void) throws -> UInt32 {
        var r = ByteReader(payload)
        let round = try r.readUInt32("memory.round")
        let count = try r.readUInt32("memory.count")
        let maximum = r.remaining / minimumRecordSize
        guard Int(count) <= maximum else {
            throw WireError.countExceedsPayload(field: "memory.count", count: UInt64(count), maximum: maximum)
        }
        for _ in 0..<count {
            let pfn = try r.readUInt64("memory.pfn")
            guard pfn < pageCount else { throw WireError.pfnOutOfRange(pfn: pfn, pageCount: pageCount) }
            let rawKind = try r.readUInt8("memory.kind")
            guard let kind = PageKind(rawValue: rawKind) else {
                throw WireError.invalidValue(field: "memory.kind", value: UInt64(rawKind))
            }
            switch kind {
            case .zero: try body(pfn, nil)
            case .data: try body(pfn, try r.readView(pageSize, "memory.page"))
            }
        }
        try r.expectEnd(.memory)
        return round
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
