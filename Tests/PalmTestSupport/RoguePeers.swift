import Foundation
import PalmHypervisor
import PalmMigration
import PalmSecurity
import PalmCrypto
import PalmTLS
import PalmWire

/// A hand-driven migration source for attack tests: it speaks palm's protocol message by message
/// with whatever certificate, ticket, pages and manifest a test wants.
public final class RogueSource {
    public let channel: TLSChannel
    let reader: FrameReader

    public init(cert: String, port: UInt16) throws {
        channel = try TLSChannel.connect(host: "127.0.0.1", port: port, context: TestPKI.shared.context(cert))
        reader = FrameReader(stream: channel)
    }

    public func send(_ m: Message) throws { try channel.send(m) }
    public func read() throws -> Message { try reader.readMessage() }

    /// Sends HELLO and returns the destination's answer (ATTEST, or ABORT for a refused ticket).
    public func hello(ticket: [UInt8]) throws -> Message {
        var nonce = [UInt8](repeating: 0, count: 32)
        for i in nonce.indices { nonce[i] = UInt8.random(in: 0...255) }
        try send(.hello(Hello(ticket: ticket, sourceNonce: Digest32(nonce)!)))
        return try read()
    }

    /// HELLO, CONFIG for `pages` pages on `streams` streams; returns the destination's PREPARED.
    public func prepare(ticket: MigrationTicket, pages: UInt64, streams: UInt8) throws -> Prepared {
        guard case .attest = try hello(ticket: ticket.encoded()) else { throw SimClusterError.command("no ATTEST") }
        try send(.config(VMConfig(name: ticket.vm, mode: .preCopy, pageSize: 4096, pageCount: pages, vcpus: 1,
                                  hypervisor: "sim", platform: [], streams: streams)))
        guard case let .prepared(p) = try read() else { throw SimClusterError.command("no PREPARED") }
        return p
    }

    /// A page whose every byte is `seed` (never all zero for seed ≠ 0).
    public static func page(_ seed: UInt8) -> [UInt8] { [UInt8](repeating: seed, count: 4096) }

    /// A sim VM's state page for `pages` pages (what STATE carries).
    public static func simState(pages: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 4096)
        w.write(raw: withUnsafeBytes(of: SimLayout.magic.littleEndian) { Array($0) })
        w.write(raw: withUnsafeBytes(of: SimLayout.version.littleEndian) { Array($0) })
        w.write(raw: withUnsafeBytes(of: pages.littleEndian) { Array($0) })
        w.write(raw: withUnsafeBytes(of: UInt64(4096).littleEndian) { Array($0) })
        w.write(raw: [UInt8](repeating: 0, count: 4096 - 32))
        return w.bytes
    }

    /// Plays a whole migration of `pages` fabricated pages up to MANIFEST and returns the
    /// destination's answer to it. `manifestTamper` may change the manifest after signing.
    public func playToManifest(ticket: MigrationTicket, pages: UInt64, signingKey: SigningKey,
                               alterPageBeforeDigest: UInt64? = nil,
                               manifestTamper: (inout Manifest) -> Void = { _ in }) throws -> Message {
        guard case .attest = try hello(ticket: ticket.encoded()) else { throw SimClusterError.command("no ATTEST") }
        try send(.config(VMConfig(name: ticket.vm, mode: .preCopy, pageSize: 4096, pageCount: pages, vcpus: 1,
                                  hypervisor: "sim", platform: [])))
        guard case .prepared = try read() else { throw SimClusterError.command("no PREPARED") }
        let digest = ImageDigest(pageCount: pages, pageSize: 4096)
        let hasher = PageHasher()
        for pfn in 0..<pages {
            var page = [UInt8](repeating: UInt8(truncatingIfNeeded: pfn &+ 1), count: 4096)
            try send(.memory(MemoryBatch(round: 0, pages: [.init(pfn: pfn, data: page)])))
            if pfn == alterPageBeforeDigest { page[100] ^= 0xFF }  // the digest covers another page than was sent
            page.withUnsafeBytes { digest.record(pfn: pfn, page: $0, hasher: hasher) }
        }
        try send(.roundEnd(RoundEnd(round: 0, pagesSent: pages, zeroPages: 0, bytesSent: 0, durationMicros: 1, dirtyPages: 0)))
        guard case .roundApplied(round: 0) = try read() else { throw SimClusterError.command("no ROUND_APPLIED") }
        let state = RogueSource.simState(pages: pages)
        try send(.state(state))
        var manifest = Manifest(imageDigest: digest.finalize(), stateDigest: SHA256.hash(state), ticketNonce: ticket.nonce,
                                rounds: 1, pagesSent: pages, bytesSent: 0, signature: [])
        manifest.signature = try signingKey.sign(manifest.signedBytes)
        manifestTamper(&manifest)
        try send(.manifest(manifest))
        return try read()
    }
}

/// A hand-driven destination for attack tests on the source side.
public final class RogueDestination: @unchecked Sendable {
    public let listener: TLSListener
    public var port: UInt16 { listener.port }

    public init(cert: String) throws {
        listener = try TLSListener(host: "127.0.0.1", port: 0, context: TestPKI.shared.context(cert))
    }

    /// Accepts one connection, reads HELLO and answers with an attestation that is correctly
    /// signed and echoes the nonce but carries another session's exporter value.
    public func answerWithForeignAttestation(key: SigningKey, measurement: (agent: Digest32, config: Digest32)) -> Background<Void> {
        Background { [listener] in
            guard let ch = try listener.accept(timeout: 30) else { return }
            defer { ch.close() }
            let reader = FrameReader(stream: ch)
            guard case let .hello(hello) = try reader.readMessage() else { return }
            var foreign = [UInt8](repeating: 0, count: 32)
            for i in foreign.indices { foreign[i] = UInt8.random(in: 0...255) }
            var a = Attestation(sourceNonce: hello.sourceNonce, exporter: Digest32(foreign)!, agentDigest: measurement.agent,
                                configDigest: measurement.config, hypervisor: "sim", hypervisorVersion: "palm-sim 1",
                                timestampMillis: UInt64(Date().timeIntervalSince1970 * 1000), signature: [])
            a.signature = try key.sign(a.signedBytes)
            try ch.send(.attest(a))
            _ = try? reader.readMessage()  // the source's ABORT
        }
    }
}
