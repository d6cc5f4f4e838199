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

/// Reads frames from a ``ByteStream`` into one buffer allocated once at the payload cap, so a
/// peer cannot make the receiver allocate: the header is validated (magic, version, type, flags,
/// length ≤ cap) before a single payload byte is read.
public final class FrameReader {
    public let stream: ByteStream
    public let limits: WireLimits
    private let buffer: UnsafeMutableRawBufferPointer

    public init(stream: ByteStream, limits: WireLimits = .default) {
        self.stream = stream
        self.limits = limits
        buffer = .allocate(byteCount: WireProtocol.headerSize + limits.maxPayload, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Reads the next frame and passes its header and payload to `body`; the payload view is
    /// valid only during the call.
    public func withNextFrame<R>(_ body: (FrameHeader, UnsafeRawBufferPointer) throws -> R) throws -> R {
        let headerBytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<WireProtocol.headerSize])
        try stream.readExactly(into: headerBytes)
        let header = try FrameHeader.decode(UnsafeRawBufferPointer(headerBytes), limits: limits)
        let end = WireProtocol.headerSize + Int(header.length)
        let payload = UnsafeMutableRawBufferPointer(rebasing: buffer[WireProtocol.headerSize..<end])
        try stream.readExactly(into: payload)
        return try body(header, UnsafeRawBufferPointer(payload))
    }

    /// Reads and decodes the next message (copies MEMORY pages; the engine uses `withNextFrame`).
    public func readMessage(memoryGeometry: (pageSize: Int, pageCount: UInt64)? = nil) throws -> Message {
        try withNextFrame { header, payload in
            try Message.decode(type: header.type, payload: payload, limits: limits, memoryGeometry: memoryGeometry)
        }
    }
}
