/// A reliable, ordered byte stream (PalmTLS's channel in production, a pipe in tests).
/// Implementations block the calling thread and throw their own typed errors on close or failure.
public protocol ByteStream: AnyObject {
    /// Reads at least one byte into `buffer` and returns how many; throws when the stream ended.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Writes all of `bytes`.
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

extension ByteStream {
    /// Fills `buffer` completely.
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws {
        var filled = 0
        while filled < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            guard n > 0 else {
                throw WireError.truncated(field: "stream", needed: buffer.count, available: filled)
            }
            filled += n
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Encodes and writes one message.
    public func send(_ message: Message) throws {
        try write(message.encodeFrame())
    }
}

/// Reads frames from a ``ByteStream``. The header is validated (magic, version, type, flags,
/// length ≤ the cap) before a single payload byte is read, and the payload buffer grows only to
/// the largest validated length seen — so a peer cannot make the receiver allocate more than its
/// cap, and a peer that sends small frames never costs the cap.
public final class FrameReader {
    public let stream: ByteStream
    public let limits: WireLimits
    private let headerBytes = UnsafeMutableRawBufferPointer.allocate(byteCount: WireProtocol.headerSize, alignment: 8)
    private var payload = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    public init(stream: ByteStream, limits: WireLimits = .default) {
        self.stream = stream
        self.limits = limits
    }

    deinit {
        headerBytes.deallocate()
        payload.deallocate()
    }

    /// Reads and validates the next frame header; the payload is still unread.
    public func nextHeader() throws -> FrameHeader {
        try stream.readExactly(into: headerBytes)
        return try FrameHeader.decode(UnsafeRawBufferPointer(headerBytes), limits: limits)
    }

    /// Reads the payload of the frame whose header was just read; valid until the next read.
    public func readPayload(after header: FrameHeader) throws -> UnsafeRawBufferPointer {
        let length = Int(header.length)
        if payload.count < length {
            payload.deallocate()
            payload = .allocate(byteCount: length, alignment: 16)
        }
        let view = UnsafeMutableRawBufferPointer(rebasing: payload[0..<length])
        try stream.readExactly(into: view)
        return UnsafeRawBufferPointer(view)
    }

    /// Reads the payload of the frame whose header was just read and decodes it.
    public func readMessage(after header: FrameHeader, memoryGeometry: (pageSize: Int, pageCount: UInt64)? = nil) throws -> Message {
        let body = try readPayload(after: header)
        return try Message.decode(type: header.type, payload: body, limits: limits, memoryGeometry: memoryGeometry)
    }

    /// Reads the next frame and passes its header and payload to `body`; the payload view is
    /// valid only during the call.
    public func withNextFrame<R>(_ body: (FrameHeader, UnsafeRawBufferPointer) throws -> R) throws -> R {
        let header = try nextHeader()
        return try body(header, try readPayload(after: header))
    }

    /// Reads and decodes the next message (copies MEMORY pages; the engine reads MEMORY in parts).
    public func readMessage(memoryGeometry: (pageSize: Int, pageCount: UInt64)? = nil) throws -> Message {
        try readMessage(after: try nextHeader(), memoryGeometry: memoryGeometry)
    }
}
