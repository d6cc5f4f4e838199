/// Every way a frame or message can fail to decode. Decoding palm's wire format is total: any
/// byte sequence either decodes or yields one of these cases — it never traps and never allocates
/// a buffer sized by a field that has not been checked against the bytes actually present.
public enum WireError: Error, Equatable, Sendable {
    /// Fewer bytes remain than the field needs.
    case truncated(field: String, needed: Int, available: Int)
    /// The frame does not start with `PALM`.
    case badMagic(UInt32)
    /// The frame speaks another protocol version (see ``WireProtocol`` for the versioning rule).
    case unsupportedVersion(received: UInt16, supported: UInt16)
    /// The message type byte names no message of this version.
    case unknownMessageType(UInt8)
    /// Flag bits this version does not define are set.
    case unknownFlags(UInt8)
    /// The frame announces more payload than the receiver's configured cap.
    case payloadTooLarge(length: UInt32, limit: Int)
    /// The message decoded but bytes were left over.
    case trailingBytes(message: MessageType, count: Int)
    /// A length-prefixed field is longer than its limit.
    case fieldTooLong(field: String, length: Int, limit: Int)
    /// A fixed-size field has the wrong size.
    case wrongFieldSize(field: String, expected: Int, actual: Int)
    /// A string field is not valid UTF-8.
    case invalidUTF8(field: String)
    /// A field holds a value outside its domain.
    case invalidValue(field: String, value: UInt64)
    /// A count field claims more elements than the remaining bytes can hold.
    case countExceedsPayload(field: String, count: UInt64, maximum: Int)
    /// A page record names a page frame number outside the VM's memory.
    case pfnOutOfRange(pfn: UInt64, pageCount: UInt64)
    /// A message arrived that the receiver's state machine does not allow here.
    case unexpectedMessage(MessageType, state: String)
}

extension WireError: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .truncated(field, needed, available):
            return "truncated frame: \(field) needs \(needed) bytes, \(available) available"
        case let .badMagic(m): return "bad frame magic 0x\(String(m, radix: 16)) (not a palm peer?)"
        case let .unsupportedVersion(r, s): return "unsupported protocol version \(r) (this side speaks \(s))"
        case let .unknownMessageType(t): return "unknown message type \(t)"
        case let .unknownFlags(f): return "undefined frame flags 0x\(String(f, radix: 16))"
        case let .payloadTooLarge(l, limit): return "frame payload of \(l) bytes exceeds the limit of \(limit)"
        case let .trailingBytes(m, c): return "\(c) unexpected trailing bytes after \(m)"
        case let .fieldTooLong(f, l, limit): return "field \(f) is \(l) bytes, limit \(limit)"
        case let .wrongFieldSize(f, e, a): return "field \(f) is \(a) bytes, expected \(e)"
        case let .invalidUTF8(f): return "field \(f) is not valid UTF-8"
        case let .invalidValue(f, v): return "field \(f) has invalid value \(v)"
        case let .countExceedsPayload(f, c, m): return "field \(f) claims \(c) entries, payload holds at most \(m)"
        case let .pfnOutOfRange(p, n): return "page frame \(p) is outside the VM's \(n) pages"
        case let .unexpectedMessage(m, s): return "unexpected \(m) in state \(s)"
        }
    }
}
