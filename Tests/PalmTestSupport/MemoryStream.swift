import PalmWire

/// An in-memory ``ByteStream`` that hands out at most `chunk` bytes per read (so readers are
/// exercised on partial reads) and records what is written; reading past the input throws ``Ended``.
public final class MemoryStream: ByteStream {
    public var input: [UInt8]
    public var position = 0
    public let chunk: Int
    public var output: [UInt8] = []

    public init(_ input: [UInt8], chunk: Int = 7) {
        self.input = input
        self.chunk = chunk
    }

    public struct Ended: Error {}

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard position < input.count else { throw Ended() }
        let n = min(chunk, buffer.count, input.count - position)
        for i in 0..<n { buffer[i] = input[position + i] }
        position += n
        return n
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { output.append(contentsOf: bytes) }
}
