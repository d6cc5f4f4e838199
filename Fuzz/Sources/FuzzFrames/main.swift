import FuzzSupport
import PalmWire

/// Frames and messages of the migration protocol: one frame decoded whole, then the input read
/// as a stream of frames; every message that decodes re-encodes to a frame that decodes to it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = input(start, count)
    let geometry = (pageSize: 4096, pageCount: UInt64(1024))
    if let m = try? Message.decodeFrame(bytes, memoryGeometry: geometry) {
        require((try? Message.decodeFrame(m.encodeFrame(), memoryGeometry: geometry)) == m, "round trip of \(m.type)")
    }
    let reader = FrameReader(stream: MemoryStream(bytes), limits: WireLimits(maxPayload: 64 << 10))
    for _ in 0..<16 {
        guard let m = try? reader.readMessage(memoryGeometry: geometry) else { break }
        _ = m.encodeFrame()
    }
    var state = DestinationProtocolState(), stream = PageStreamProtocolState(), source = SourceProtocolState()
    for b in bytes.prefix(64) {
        guard let type = MessageType(rawValue: b % 20) else { continue }
        try? state.receive(type)
        try? stream.receive(type)
        try? source.receive(type)
    }
    return 0
}
