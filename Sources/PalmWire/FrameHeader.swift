/// The fixed 12-byte header in front of every payload. Decoding it checks magic, version, type,
/// flags and the length cap, so a caller that has a ``FrameHeader`` may allocate `length` bytes.
public struct FrameHeader: Equatable, Sendable {
    public var type: MessageType
    public var flags: UInt8
    public var length: UInt32

    /// Flag bits defined by this version (none: version 1 defines no flags).
    public static let definedFlags: UInt8 = 0

    public init(type: MessageType, flags: UInt8 = 0, length: UInt32) {
        self.type = type
        self.flags = flags
        self.length = length
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(WireProtocol.magic)
        writer.write(WireProtocol.version)
        writer.write(type.rawValue)
        writer.write(flags)
        writer.write(length)
    }

    /// Decodes and validates a header from exactly ``WireProtocol/headerSize`` bytes.
    public static func decode(_ bytes: UnsafeRawBufferPointer, limits: WireLimits) throws -> FrameHeader {
        var r = ByteReader(bytes)
        let magic = try r.readUInt32("frame.magic")
        guard magic == WireProtocol.magic else { throw WireError.badMagic(magic) }
        let version = try r.readUInt16("frame.version")
        guard version == WireProtocol.version else {
            throw WireError.unsupportedVersion(received: version, supported: WireProtocol.version)
        }
        let rawType = try r.readUInt8("frame.type")
        guard let type = MessageType(rawValue: rawType) else { throw WireError.unknownMessageType(rawType) }
        let flags = try r.readUInt8("frame.flags")
        guard flags & ~definedFlags == 0 else { throw WireError.unknownFlags(flags) }
        let length = try r.readUInt32("frame.length")
        guard Int(length) <= limits.maxPayload else {
            throw WireError.payloadTooLarge(length: length, limit: limits.maxPayload)
        }
        return FrameHeader(type: type, flags: flags, length: length)
    }
}
