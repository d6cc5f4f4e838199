import Foundation
import PalmSecurity
import PalmCrypto
import PalmWire

/// Bytes handed out by a ByteStream, at most `chunk` per read (to exercise partial reads).
public final class MemoryStream: ByteStream {
    private let bytes: [UInt8]
    private var offset = 0
    private let chunk: Int
    public struct Ended: Error {}

    public init(_ bytes: [UInt8], chunk: Int = 7) {
        self.bytes = bytes
        self.chunk = chunk
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < bytes.count else { throw Ended() }
        let n = min(buffer.count, chunk, bytes.count - offset)
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        return n
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {}
}

/// The verifying key of ``fuzzCertificatePEM``.
public let fuzzKey: VerifyingKey = {
    do { return try VerifyingKey(certificatePEM: fuzzCertificatePEM) } catch { fatalError("fuzz certificate: \(error)") }
}()

/// ``fuzzCertificatePEM`` as the one trusted coordinator.
public let fuzzCoordinators: CoordinatorTrust = {
    do { return try CoordinatorTrust(certificatePEMs: [fuzzCertificatePEM]) } catch { fatalError("fuzz certificate: \(error)") }
}()

/// The input as bytes.
public func input(_ start: UnsafeRawPointer, _ count: Int) -> [UInt8] { Array(UnsafeRawBufferPointer(start: start, count: count)) }

/// A property every decoder must keep; a violation is a crash the fuzzer reports.
public func require(_ condition: Bool, _ what: @autoclosure () -> String) {
    if !condition { fatalError("fuzz property violated: \(what())") }
}
