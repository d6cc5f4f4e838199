import PalmTestSupport
import PalmWire
import Testing

@Suite("FrameReader")
struct FrameStreamTests {
    @Test("reads a sequence of frames split across small reads")
    func sequence() throws {
        let stream = MemoryStream(everyMessage.flatMap { $0.encodeFrame() })
        let reader = FrameReader(stream: stream)
        for expected in everyMessage {
            #expect(try reader.readMessage(memoryGeometry: geometry) == expected)
        }
        #expect(throws: MemoryStream.Ended.self) { try reader.readMessage() }
    }

    @Test("a frame over the configured cap is refused from its header, before its payload is read")
    func cap() throws {
        let big = Message.state([UInt8](repeating: 1, count: 10_000)).encodeFrame()
        let stream = MemoryStream(big, chunk: 1 << 20)
        let reader = FrameReader(stream: stream, limits: WireLimits(maxPayload: 4096))
        #expect(throws: WireError.payloadTooLarge(length: UInt32(big.count - 12), limit: 4096)) {
            try reader.readMessage()
        }
        #expect(stream.position == WireProtocol.headerSize)
    }

    @Test("send writes exactly the encoded frame")
    func send() throws {
        let stream = MemoryStream([])
        try stream.send(.done)
        #expect(stream.output == Message.done.encodeFrame())
    }
}

@Suite("Receiver state machines")
struct ProtocolStateTests {
    @Test("the destination accepts the full protocol in order, with several rounds")
    func destinationHappyPath() throws {
        var s = DestinationProtocolState()
        for t: MessageType in [.hello, .config, .memory, .memory, .roundEnd, .memory, .roundEnd, .roundEnd,
                               .state, .manifest, .commit] {
            try s.receive(t)
        }
        #expect(s == .committed)
    }

    @Test("out-of-order messages are refused with the state named", arguments: [
        ([MessageType.memory], "awaitingHello"),
        ([.hello, .memory], "awaitingConfig"),
        ([.hello, .config, .state], "receivingMemory"),
        ([.hello, .config, .memory, .roundEnd, .commit], "betweenRounds"),
        ([.hello, .config, .memory, .roundEnd, .state, .commit], "awaitingManifest"),
        ([.hello, .config, .memory, .roundEnd, .state, .manifest, .memory], "awaitingCommit"),
        ([.hello, .hello], "awaitingConfig"),
        ([.hello, .attest], "awaitingConfig"),
    ])
    func destinationRefuses(_ sequence: [MessageType], _ state: String) throws {
        var s = DestinationProtocolState()
        for t in sequence.dropLast() { try s.receive(t) }
        #expect(throws: WireError.unexpectedMessage(sequence.last!, state: state)) { try s.receive(sequence.last!) }
    }

    @Test("ABORT before commit moves the destination to aborted; nothing is accepted after")
    func destinationAbort() throws {
        var s = DestinationProtocolState()
        try s.receive(.hello)
        try s.receive(.config)
        try s.receive(.abort)
        #expect(s == .aborted)
        #expect(throws: WireError.self) { try s.receive(.memory) }
    }

    @Test("the source expects ATTEST, PREPARED only after CONFIG, READY only after MANIFEST, DONE only after COMMIT")
    func source() throws {
        var s = SourceProtocolState()
        #expect(throws: WireError.unexpectedMessage(.ready, state: "awaitingAttest")) { try s.receive(.ready) }
        try s.receive(.attest)
        #expect(throws: WireError.unexpectedMessage(.prepared, state: "attested")) { try s.receive(.prepared) }
        s.sent(.config)
        try s.receive(.prepared)
        #expect(throws: WireError.unexpectedMessage(.ready, state: "streaming")) { try s.receive(.ready) }
        s.sent(.manifest)
        try s.receive(.ready)
        #expect(throws: WireError.unexpectedMessage(.done, state: "readyReceived")) { try s.receive(.done) }
        s.sent(.commit)
        try s.receive(.done)
        #expect(s == .done)
    }
}
