internal import CTSS2ESys

/// Bytes in and out of tpm2-tss's C structures: fixed arrays (tuples in Swift) and marshalled
/// forms (through tpm2-tss's own marshalling, never by hand).
enum TPMBytes {
    /// The first `count` bytes of a C fixed-size array.
    static func read<T>(_ tuple: T, count: Int) -> [UInt8] {
        withUnsafeBytes(of: tuple) { Array($0.prefix(max(0, count))) }
    }

    /// Copies `bytes` into a C fixed-size array (at most its size); returns how many were copied.
    @discardableResult
    static func write<T>(_ bytes: [UInt8], into tuple: inout T) -> Int {
        withUnsafeMutableBytes(of: &tuple) { raw in
            let n = min(raw.count, bytes.count)
            raw.copyBytes(from: bytes.prefix(n))
            return n
        }
    }

    /// A structure marshalled by tpm2-tss into at most `capacity` bytes.
    static func marshal<T>(_ value: T, capacity: Int = 4096,
                           _ marshal: (UnsafePointer<T>, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutablePointer<Int>) -> UInt32) throws -> [UInt8] {
        var v = value
        var out = [UInt8](repeating: 0, count: capacity)
        var offset = 0
        let rc = out.withUnsafeMutableBufferPointer { b in marshal(&v, b.baseAddress, b.count, &offset) }
        guard rc == 0 else { throw TPMError.unexpected("cannot marshal a TPM structure (0x\(String(rc, radix: 16)))") }
        return Array(out.prefix(offset))
    }

    /// A structure unmarshalled by tpm2-tss from all of `bytes`.
    static func unmarshal<T>(_ bytes: [UInt8], into value: inout T,
                             _ unmarshal: (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<Int>, UnsafeMutablePointer<T>) -> UInt32) throws {
        var offset = 0
        let rc = bytes.withUnsafeBufferPointer { b in unmarshal(b.baseAddress, b.count, &offset, &value) }
        guard rc == 0, offset == bytes.count else { throw TPMError.unexpected("malformed TPM structure (0x\(String(rc, radix: 16)))") }
    }
}
