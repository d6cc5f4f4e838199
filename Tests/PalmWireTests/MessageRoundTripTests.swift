import PalmWire
import Testing

let geometry = (pageSize: 4096, pageCount: UInt64(1024))

func digest(_ seed: UInt8) -> Digest32 { Digest32([UInt8](repeating: seed, count: 32))! }

func page(_ seed: UInt8) -> [UInt8] { (0..<4096).map { UInt8(truncatingIfNeeded: Int($0) &* 7 &+ Int(seed)) } }

/// One value of every message type, with non-trivial fields.
let everyMessage: [Message] = [
    .hello(Hello(ticket: Array("signed-ticket".utf8), sourceNonce: digest(1))),
    .attest(Attestation(sourceNonce: digest(1), exporter: digest(2), agentDigest: digest(3), configDigest: digest(4),
                        hypervisor: "xen", hypervisorVersion: "4.17.7", timestampMillis: 1_790_000_000_000,
                        signature: [0x30, 0x44, 1, 2, 3])),
    .attest(Attestation(sourceNonce: digest(1), exporter: digest(2), agentDigest: digest(3), configDigest: digest(4),
                        hypervisor: "xen", hypervisorVersion: "4.17.7", timestampMillis: 1_790_000_000_000,
                        platform: PlatformEvidence(attestationKey: [1, 2, 3], quote: Array(repeating: 0x44, count: 150), signature: [9],
                                                   pcrValues: [.init(index: 0, value: digest(9)), .init(index: 10, value: digest(10))],
                                                   bootLog: [7, 7, 7], imaLog: Array(repeating: 0x55, count: 3000)),
                        signature: [0x30, 0x44, 1, 2, 3])),
    .config(VMConfig(name: "vm-7 ✓", mode: .preCopy, pageSize: 4096, pageCount: 1024, vcpus: 2, hypervisor: "sim",
                     platform: [9, 8, 7], streams: 4, compression: .zstd)),
    .memory(MemoryBatch(round: 3, pages: [.init(pfn: 0, data: page(1)), .init(pfn: 17, data: nil),
                                          .init(pfn: 1023, data: page(2))])),
    .memory(MemoryBatch(round: 4, pages: [.init(pfn: 2, data: []), .init(pfn: 3, data: nil), .init(pfn: 9, data: [])],
                        codec: .lz4, compressedData: [1, 2, 3, 4, 5])),
    .roundEnd(RoundEnd(round: 3, pagesSent: 100, zeroPages: 4, bytesSent: 409_600, durationMicros: 12_345, dirtyPages: 77)),
    .state([UInt8](repeating: 0xAB, count: 5000)),
    .manifest(Manifest(imageDigest: digest(5), stateDigest: digest(6), ticketNonce: digest(7), rounds: 4,
                       pagesSent: 2048, bytesSent: 8_400_000, signature: [1, 2, 3, 4])),
    .ready(signature: [5, 6]),
    .commit(signature: [7, 8, 9]),
    .prepared(Prepared(sessionToken: Array(100..<116), handoffMicros: 4_321)),
    .join(Join(sessionToken: Array(100..<116), stream: 3, proof: digest(8))),
    .joined,
    .roundApplied(round: 7),
    .resolve(migrationID: Array(0..<16)),
    .resolution(migrationID: Array(0..<16), .committed),
    .done,
    .abort(AbortNotice(reason: .attestationRejected, message: "measurement not in allowlist")),
    .error(AbortNotice(reason: .protocolViolation, message: "unexpected MEMORY in state awaitingHello")),
]

extension Message: CustomTestStringConvertible {
    public var testDescription: String { type.description }
}

@Suite("Every message round-trips")
struct MessageRoundTripTests {
    @Test("encode then decode gives back the same message", arguments: everyMessage)
    func roundTrip(_ message: Message) throws {
        let frame = message.encodeFrame()
        #expect(try Message.decodeFrame(frame, memoryGeometry: geometry) == message)
        // The header announces exactly the payload that follows.
        let length = frame[8...11].reduce(0) { $0 << 8 | Int($1) }
        #expect(length == frame.count - WireProtocol.headerSize)
        #expect(frame[6] == message.type.rawValue)
    }

    @Test("every message type has a test value")
    func coverage() {
        #expect(Set(everyMessage.map(\.type)) == Set(MessageType.allCases))
        #expect(WireProtocol.version == 3)
    }

    @Test("a zero page travels as a marker, not 4 KiB of zeros")
    func zeroPages() throws {
        let frame = MemoryBatch(round: 0, pages: [.init(pfn: 5, data: nil)]).encodeFrame()
        #expect(frame.count == WireProtocol.headerSize + MemoryBatchDecoder.headerSize + MemoryBatchDecoder.recordSize)
        #expect(try Message.decodeFrame(frame, memoryGeometry: geometry) ==
                .memory(MemoryBatch(round: 0, pages: [.init(pfn: 5, data: nil)])))
    }

    @Test("the signed bytes of an attestation cover every field but the signature")
    func attestationSignedBytes() {
        guard case var .attest(a) = everyMessage.first(where: { $0.type == .attest }) else { Issue.record("no attest"); return }
        let original = a.signedBytes
        a.signature = [0xFF]
        #expect(a.signedBytes == original)
        a.timestampMillis += 1
        #expect(a.signedBytes != original)
        a.timestampMillis -= 1
        a.exporter = digest(9)
        #expect(a.signedBytes != original)
    }

    @Test("the signed bytes of a manifest change with the image digest")
    func manifestSignedBytes() {
        guard case var .manifest(m) = everyMessage.first(where: { $0.type == .manifest }) else { Issue.record("no manifest"); return }
        let original = m.signedBytes
        m.imageDigest = digest(0xEE)
        #expect(m.signedBytes != original)
    }
}

@Suite("Long strings")
struct LongStringTests {
    @Test("a long ABORT explanation is cut on a character boundary and still decodes")
    func longAbort() throws {
        let message = String(repeating: "é", count: 5000)  // 10,000 bytes of 2-byte characters
        let frame = Message.abort(AbortNotice(reason: .internalError, message: message)).encodeFrame()
        guard case let .abort(n) = try Message.decodeFrame(frame) else { Issue.record("not an ABORT"); return }
        #expect(n.message.utf8.count <= WireLimits.default.maxString)
        #expect(message.hasPrefix(n.message) && !n.message.isEmpty)
    }
}

@Suite("MEMORY batch prefix")
struct MemoryBatchPrefixTests {
    @Test("the prefix the sender writes before its page data decodes to the same batch")
    func prefixThenData() throws {
        let prefix = MemoryBatchPrefix(capacityPages: 4)
        prefix.begin(round: 2)
        prefix.append(pfn: 7, kind: .data)
        prefix.append(pfn: 8, kind: .zero)
        prefix.append(pfn: 1000, kind: .data)
        let data = page(3) + page(4)
        let frame = Array(prefix.finish(codec: .none, dataLength: data.count)) + data
        #expect(try Message.decodeFrame(frame, memoryGeometry: geometry) == .memory(MemoryBatch(round: 2, pages: [
            .init(pfn: 7, data: page(3)), .init(pfn: 8, data: nil), .init(pfn: 1000, data: page(4))])))
    }
}
