import PalmWire
import Testing

/// Builds a frame with an arbitrary header and payload.
func rawFrame(magic: UInt32 = WireProtocol.magic, version: UInt16 = WireProtocol.version, type: UInt8,
              flags: UInt8 = 0, length: UInt32? = nil, payload: [UInt8]) -> [UInt8] {
    var w = ByteWriter()
    w.write(magic)
    w.write(version)
    w.write(type)
    w.write(flags)
    w.write(length ?? UInt32(payload.count))
    w.write(raw: payload)
    return w.bytes
}

func payload(_ build: (inout ByteWriter) -> Void) -> [UInt8] {
    var w = ByteWriter()
    build(&w)
    return w.bytes
}

struct MalformedCase: CustomTestStringConvertible, Sendable {
    let name: String
    let frame: [UInt8]
    let expected: WireError
    var testDescription: String { name }
}

let validHello = Message.hello(Hello(ticket: [1, 2, 3], sourceNonce: digest(1))).encodeFrame()

let malformedCases: [MalformedCase] = [
    MalformedCase(name: "empty input", frame: [],
                  expected: .truncated(field: "frame.header", needed: 12, available: 0)),
    MalformedCase(name: "truncated header", frame: Array(validHello.prefix(7)),
                  expected: .truncated(field: "frame.header", needed: 12, available: 7)),
    MalformedCase(name: "bad magic", frame: rawFrame(magic: 0x4854_5450, type: 1, payload: []),
                  expected: .badMagic(0x4854_5450)),
    MalformedCase(name: "the previous version", frame: rawFrame(version: 1, type: 1, payload: []),
                  expected: .unsupportedVersion(received: 1, supported: WireProtocol.version)),
    MalformedCase(name: "unknown type", frame: rawFrame(type: 200, payload: []),
                  expected: .unknownMessageType(200)),
    MalformedCase(name: "undefined flags", frame: rawFrame(type: 10, flags: 0x80, payload: []),
                  expected: .unknownFlags(0x80)),
    MalformedCase(name: "length over the cap", frame: rawFrame(type: 6, length: 0xFFFF_FFF0, payload: []),
                  expected: .payloadTooLarge(length: 0xFFFF_FFF0, limit: WireLimits.default.maxPayload)),
    MalformedCase(name: "payload shorter than announced", frame: Array(validHello.dropLast(4)),
                  expected: .truncated(field: "frame.payload", needed: validHello.count - 12, available: validHello.count - 16)),
    MalformedCase(name: "bytes after the announced payload", frame: validHello + [0],
                  expected: .trailingBytes(message: .hello, count: 1)),
    MalformedCase(name: "trailing bytes inside a DONE payload", frame: rawFrame(type: 10, payload: [0]),
                  expected: .trailingBytes(message: .done, count: 1)),
    MalformedCase(name: "ticket longer than its limit",
                  frame: rawFrame(type: 1, payload: payload { $0.write(UInt32(1 << 20)) }),
                  expected: .fieldTooLong(field: "hello.ticket", length: 1 << 20, limit: WireLimits.default.maxTicket)),
    MalformedCase(name: "ticket length beyond the payload",
                  frame: rawFrame(type: 1, payload: payload { $0.write(UInt32(100)); $0.write(raw: [1, 2]) }),
                  expected: .truncated(field: "hello.ticket", needed: 100, available: 2)),
    MalformedCase(name: "nonce cut short",
                  frame: rawFrame(type: 1, payload: payload { $0.write(UInt32(0)); $0.write(raw: [1, 2, 3]) }),
                  expected: .truncated(field: "hello.nonce", needed: 32, available: 3)),
    MalformedCase(name: "invalid UTF-8 in a string",
                  frame: rawFrame(type: 11, payload: payload { $0.write(UInt16(6)); $0.write(UInt16(2)); $0.write(raw: [0xC3, 0x28]) }),
                  expected: .invalidUTF8(field: "abort.message")),
    MalformedCase(name: "unknown abort reason",
                  frame: rawFrame(type: 11, payload: payload { $0.write(UInt16(999)); $0.write(string: "x") }),
                  expected: .invalidValue(field: "abort.reason", value: 999)),
    MalformedCase(name: "unknown migration mode",
                  frame: rawFrame(type: 3, payload: payload { $0.write(string: "vm"); $0.write(UInt8(7)) }),
                  expected: .invalidValue(field: "config.mode", value: 7)),
    MalformedCase(name: "unsupported page size",
                  frame: rawFrame(type: 3, payload: payload { $0.write(string: "vm"); $0.write(UInt8(0)); $0.write(UInt32(1000)) }),
                  expected: .invalidValue(field: "config.pageSize", value: 1000)),
    MalformedCase(name: "zero pages of RAM",
                  frame: rawFrame(type: 3, payload: payload { $0.write(string: "vm"); $0.write(UInt8(0)); $0.write(UInt32(4096)); $0.write(UInt64(0)) }),
                  expected: .invalidValue(field: "config.pageCount", value: 0)),
    MalformedCase(name: "page count claims more records than the payload holds",
                  frame: rawFrame(type: 4, payload: payload { $0.write(UInt32(0)); $0.write(UInt32(0xFFFF_FFFF)); $0.write(UInt8(0)) }),
                  expected: .countExceedsPayload(field: "memory.count", count: 0xFFFF_FFFF, maximum: 0)),
    MalformedCase(name: "unknown compression codec",
                  frame: rawFrame(type: 4, payload: payload { $0.write(UInt32(0)); $0.write(UInt32(0)); $0.write(UInt8(7)) }),
                  expected: .invalidValue(field: "memory.codec", value: 7)),
    MalformedCase(name: "pfn outside the VM",
                  frame: rawFrame(type: 4, payload: payload { $0.write(UInt32(0)); $0.write(UInt32(1)); $0.write(UInt8(0)); $0.write(UInt64(5000)); $0.write(UInt8(1)) }),
                  expected: .pfnOutOfRange(pfn: 5000, pageCount: 1024)),
    MalformedCase(name: "unknown page kind",
                  frame: rawFrame(type: 4, payload: payload { $0.write(UInt32(0)); $0.write(UInt32(1)); $0.write(UInt8(0)); $0.write(UInt64(1)); $0.write(UInt8(9)) }),
                  expected: .invalidValue(field: "memory.kind", value: 9)),
    MalformedCase(name: "data page cut short",
                  frame: rawFrame(type: 4, payload: payload {
                      $0.write(UInt32(0)); $0.write(UInt32(1)); $0.write(UInt8(0)); $0.write(UInt64(1)); $0.write(UInt8(0))
                      $0.write(raw: [UInt8](repeating: 1, count: 100))
                  }),
                  expected: .truncated(field: "memory.data", needed: 4096, available: 100)),
    MalformedCase(name: "a compressed batch that does not shrink its pages",
                  frame: rawFrame(type: 4, payload: payload {
                      $0.write(UInt32(0)); $0.write(UInt32(1)); $0.write(UInt8(1)); $0.write(UInt64(1)); $0.write(UInt8(0))
                      $0.write(raw: [UInt8](repeating: 1, count: 4096))
                  }),
                  expected: .invalidValue(field: "memory.compressedLength", value: 4096)),
    MalformedCase(name: "no page streams",
                  frame: rawFrame(type: 3, payload: payload {
                      $0.write(string: "vm"); $0.write(UInt8(0)); $0.write(UInt32(4096)); $0.write(UInt64(1)); $0.write(UInt32(1))
                      $0.write(string: "sim"); $0.write(UInt32(0)); $0.write(UInt8(0))
                  }),
                  expected: .invalidValue(field: "config.streams", value: 0)),
    MalformedCase(name: "JOIN as the session channel",
                  frame: rawFrame(type: 16, payload: payload { $0.write(raw: [UInt8](repeating: 7, count: 16)); $0.write(UInt8(0)) }),
                  expected: .invalidValue(field: "join.stream", value: 0)),
    MalformedCase(name: "signature longer than its limit",
                  frame: rawFrame(type: 8, payload: payload { $0.write(UInt32(4096)) }),
                  expected: .fieldTooLong(field: "ready.signature", length: 4096, limit: WireLimits.default.maxSignature)),
]

@Suite("Malformed input yields its own named error")
struct MalformedInputTests {
    @Test("decoding refuses", arguments: malformedCases)
    func refuses(_ c: MalformedCase) {
        #expect(throws: c.expected) { try Message.decodeFrame(c.frame, memoryGeometry: geometry) }
    }

    @Test("every malformed case names a different failure")
    func distinct() {
        #expect(Set(malformedCases.map { "\($0.expected)" }).count == malformedCases.count)
    }

    @Test("MEMORY without a CONFIG (no geometry) is refused")
    func memoryWithoutGeometry() {
        let frame = Message.memory(MemoryBatch(round: 0, pages: [])).encodeFrame()
        #expect(throws: WireError.unexpectedMessage(.memory, state: "no CONFIG received")) {
            try Message.decodeFrame(frame)
        }
    }

    @Test("every prefix of every valid frame fails with a typed error, never a crash", arguments: everyMessage)
    func everyPrefix(_ message: Message) {
        let frame = message.encodeFrame()
        for cut in 0..<frame.count {
            #expect(throws: WireError.self) { try Message.decodeFrame(Array(frame.prefix(cut)), memoryGeometry: geometry) }
        }
    }

    @Test("random single-byte corruptions either decode or fail with a WireError")
    func corruptions() {
        var generator = SystemRandomNumberGenerator()
        for message in everyMessage {
            let frame = message.encodeFrame()
            for _ in 0..<200 {
                var bad = frame
                let i = Int.random(in: 0..<bad.count, using: &generator)
                bad[i] ^= UInt8.random(in: 1...255, using: &generator)
                do {
                    _ = try Message.decodeFrame(bad, memoryGeometry: geometry)
                } catch {
                    #expect(error is WireError)
                }
            }
        }
    }
}
