/// One decoded message of protocol version 2. `encodeFrame` and `decode` are exact inverses for
/// every value whose fields respect ``WireLimits``.
public enum Message: Equatable, Sendable {
    case hello(Hello)
    case attest(Attestation)
    case config(VMConfig)
    case memory(MemoryBatch)
    case roundEnd(RoundEnd)
    case state([UInt8])
    case manifest(Manifest)
    /// READY: the destination's signature over the manifest it verified.
    case ready(signature: [UInt8])
    /// COMMIT: the source's signature handing the VM over.
    case commit(signature: [UInt8])
    /// PREPARED: the destination created an empty paused VM for the CONFIG and has room for it.
    case prepared(Prepared)
    /// JOIN: an extra page stream asks to join a session.
    case join(Join)
    /// JOINED: the destination accepted the stream; pages may follow on it.
    case joined
    /// ROUND_APPLIED: the destination applied every page of the round, on every stream.
    case roundApplied(round: UInt32)
    /// RESOLVE: the source asks how migration `id` (16 bytes) ended.
    case resolve(migrationID: [UInt8])
    case resolution(migrationID: [UInt8], Resolution)
    case done
    case abort(AbortNotice)
    case error(AbortNotice)

    public var type: MessageType {
        switch self {
        case .hello: return .hello
        case .attest: return .attest
        case .config: return .config
        case .memory: return .memory
        case .roundEnd: return .roundEnd
        case .state: return .state
        case .manifest: return .manifest
        case .ready: return .ready
        case .commit: return .commit
        case .prepared: return .prepared
        case .join: return .join
        case .joined: return .joined
        case .roundApplied: return .roundApplied
        case .resolve: return .resolve
        case .resolution: return .resolution
        case .done: return .done
        case .abort: return .abort
        case .error: return .error
        }
    }

    /// The complete frame: header plus payload.
    public func encodeFrame() -> [UInt8] {
        if case let .memory(batch) = self { return batch.encodeFrame() }
        var w = ByteWriter()
        FrameHeader(type: type, length: 0).encode(into: &w)
        encodePayload(into: &w)
        w.patch(UInt32(w.count - WireProtocol.headerSize), at: WireProtocol.headerSize - 4)
        return w.bytes
    }

    /// A session token as it travels: exactly ``Prepared/tokenSize`` bytes.
    private static func token(_ t: [UInt8]) -> [UInt8] {
        Array((t + [UInt8](repeating: 0, count: Prepared.tokenSize)).prefix(Prepared.tokenSize))
    }

    private func encodePayload(into w: inout ByteWriter) {
        switch self {
        case let .hello(h):
            w.write(lengthPrefixed: h.ticket)
            w.write(raw: h.sourceNonce.bytes)
        case let .attest(a):
            a.encodeBody(into: &w)
            w.write(lengthPrefixed: a.signature)
        case let .config(c):
            w.write(string: c.name)
            w.write(c.mode.rawValue)
            w.write(c.pageSize)
            w.write(c.pageCount)
            w.write(c.vcpus)
            w.write(string: c.hypervisor)
            w.write(lengthPrefixed: c.platform)
            w.write(c.streams)
            w.write(c.compression.rawValue)
        case .memory:
            preconditionFailure("MEMORY is encoded by MemoryBatch")
        case let .roundEnd(e):
            w.write(e.round)
            w.write(e.pagesSent)
            w.write(e.zeroPages)
            w.write(e.bytesSent)
            w.write(e.durationMicros)
            w.write(e.dirtyPages)
        case let .state(s):
            w.write(lengthPrefixed: s)
        case let .manifest(m):
            m.encodeBody(into: &w)
            w.write(lengthPrefixed: m.signature)
        case let .ready(sig), let .commit(sig):
            w.write(lengthPrefixed: sig)
        case let .prepared(p):
            w.write(raw: Self.token(p.sessionToken))
            w.write(p.handoffMicros)
        case let .join(j):
            w.write(raw: Self.token(j.sessionToken))
            w.write(j.stream)
            w.write(raw: j.proof.bytes)
        case let .roundApplied(round):
            w.write(round)
        case .done, .joined:
            break
        case let .resolve(id):
            w.write(raw: id)
        case let .resolution(id, r):
            w.write(raw: id)
            w.write(r.rawValue)
        case let .abort(n), let .error(n):
            w.write(n.reason.rawValue)
            // An explanation longer than receivers accept would turn the ABORT itself into an error.
            w.write(string: n.message, limit: WireLimits.default.maxString)
        }
    }

    /// Decodes a payload of the given type. For MEMORY, `memoryGeometry` gives the page size and
    /// page count from CONFIG; without it MEMORY cannot be validated and is refused.
    public static func decode(type: MessageType, payload: UnsafeRawBufferPointer, limits: WireLimits = .default,
                              memoryGeometry: (pageSize: Int, pageCount: UInt64)? = nil) throws -> Message {
        var r = ByteReader(payload)
        let message: Message
        switch type {
        case .hello:
            let ticket = try r.readLengthPrefixed("hello.ticket", limit: limits.maxTicket)
            message = .hello(Hello(ticket: ticket, sourceNonce: try r.readDigest("hello.nonce")))
        case .attest:
            let nonce = try r.readDigest("attest.nonce")
            let exporter = try r.readDigest("attest.exporter")
            let agentDigest = try r.readDigest("attest.agentDigest")
            let configDigest = try r.readDigest("attest.configDigest")
            let hypervisor = try r.readString("attest.hypervisor", limit: limits.maxString)
            let hypervisorVersion = try r.readString("attest.hypervisorVersion", limit: limits.maxString)
            let timestamp = try r.readUInt64("attest.timestamp")
            let hasPlatform = try r.readUInt8("attest.platform")
            guard hasPlatform <= 1 else { throw WireError.invalidValue(field: "attest.platform", value: UInt64(hasPlatform)) }
            let platform = hasPlatform == 1 ? try PlatformEvidence.decode(from: &r, limits: limits) : nil
            message = .attest(Attestation(
                sourceNonce: nonce, exporter: exporter, agentDigest: agentDigest, configDigest: configDigest,
                hypervisor: hypervisor, hypervisorVersion: hypervisorVersion, timestampMillis: timestamp, platform: platform,
                signature: try r.readLengthPrefixed("attest.signature", limit: limits.maxSignature)))
        case .config:
            let name = try r.readString("config.name", limit: limits.maxString)
            let rawMode = try r.readUInt8("config.mode")
            guard let mode = MigrationMode(rawValue: rawMode) else {
                throw WireError.invalidValue(field: "config.mode", value: UInt64(rawMode))
            }
            let pageSize = try r.readUInt32("config.pageSize")
            guard VMConfig.allowedPageSizes.contains(pageSize) else {
                throw WireError.invalidValue(field: "config.pageSize", value: UInt64(pageSize))
            }
            let pageCount = try r.readUInt64("config.pageCount")
            guard pageCount > 0, pageCount <= UInt64(1) << 40 else {
                throw WireError.invalidValue(field: "config.pageCount", value: pageCount)
            }
            let vcpus = try r.readUInt32("config.vcpus")
            guard vcpus > 0, vcpus <= 4096 else { throw WireError.invalidValue(field: "config.vcpus", value: UInt64(vcpus)) }
            let hypervisor = try r.readString("config.hypervisor", limit: limits.maxString)
            let platform = try r.readLengthPrefixed("config.platform", limit: limits.maxPlatformConfig)
            let streams = try r.readUInt8("config.streams")
            guard streams >= 1, Int(streams) <= WireProtocol.maxStreams else {
                throw WireError.invalidValue(field: "config.streams", value: UInt64(streams))
            }
            let rawCompression = try r.readUInt8("config.compression")
            guard let compression = PageCompression(rawValue: rawCompression) else {
                throw WireError.invalidValue(field: "config.compression", value: UInt64(rawCompression))
            }
            message = .config(VMConfig(name: name, mode: mode, pageSize: pageSize, pageCount: pageCount, vcpus: vcpus,
                                       hypervisor: hypervisor, platform: platform, streams: streams, compression: compression))
        case .memory:
            guard let geometry = memoryGeometry else {
                throw WireError.unexpectedMessage(.memory, state: "no CONFIG received")
            }
            return .memory(try MemoryBatchDecoder.decode(payload, pageSize: geometry.pageSize, pageCount: geometry.pageCount,
                                                         limits: limits))
        case .roundEnd:
            message = .roundEnd(RoundEnd(
                round: try r.readUInt32("roundEnd.round"),
                pagesSent: try r.readUInt64("roundEnd.pagesSent"),
                zeroPages: try r.readUInt64("roundEnd.zeroPages"),
                bytesSent: try r.readUInt64("roundEnd.bytesSent"),
                durationMicros: try r.readUInt64("roundEnd.durationMicros"),
                dirtyPages: try r.readUInt64("roundEnd.dirtyPages")))
        case .state:
            message = .state(try r.readLengthPrefixed("state", limit: limits.maxState))
        case .manifest:
            message = .manifest(Manifest(
                imageDigest: try r.readDigest("manifest.imageDigest"),
                stateDigest: try r.readDigest("manifest.stateDigest"),
                ticketNonce: try r.readDigest("manifest.ticketNonce"),
                rounds: try r.readUInt32("manifest.rounds"),
                pagesSent: try r.readUInt64("manifest.pagesSent"),
                bytesSent: try r.readUInt64("manifest.bytesSent"),
                signature: try r.readLengthPrefixed("manifest.signature", limit: limits.maxSignature)))
        case .ready:
            message = .ready(signature: try r.readLengthPrefixed("ready.signature", limit: limits.maxSignature))
        case .commit:
            message = .commit(signature: try r.readLengthPrefixed("commit.signature", limit: limits.maxSignature))
        case .done:
            message = .done
        case .prepared:
            message = .prepared(Prepared(sessionToken: try r.readBytes(Prepared.tokenSize, "prepared.token"),
                                         handoffMicros: try r.readUInt32("prepared.handoffMicros")))
        case .join:
            let token = try r.readBytes(Prepared.tokenSize, "join.token")
            let stream = try r.readUInt8("join.stream")
            guard stream >= 1, Int(stream) < WireProtocol.maxStreams else {
                throw WireError.invalidValue(field: "join.stream", value: UInt64(stream))
            }
            message = .join(Join(sessionToken: token, stream: stream, proof: try r.readDigest("join.proof")))
        case .joined:
            message = .joined
        case .roundApplied:
            message = .roundApplied(round: try r.readUInt32("roundApplied.round"))
        case .resolve:
            message = .resolve(migrationID: try r.readBytes(16, "resolve.id"))
        case .resolution:
            let id = try r.readBytes(16, "resolution.id")
            let raw = try r.readUInt8("resolution.state")
            guard let state = Resolution(rawValue: raw) else {
                throw WireError.invalidValue(field: "resolution.state", value: UInt64(raw))
            }
            message = .resolution(migrationID: id, state)
        case .abort, .error:
            let field = type == .abort ? "abort" : "error"
            let rawReason = try r.readUInt16("\(field).reason")
            guard let reason = AbortReason(rawValue: rawReason) else {
                throw WireError.invalidValue(field: "\(field).reason", value: UInt64(rawReason))
            }
            let notice = AbortNotice(reason: reason, message: try r.readString("\(field).message", limit: limits.maxString))
            message = type == .abort ? .abort(notice) : .error(notice)
        }
        try r.expectEnd(type)
        return message
    }

    /// Decodes one complete frame (header + payload) held in memory.
    public static func decodeFrame(_ frame: [UInt8], limits: WireLimits = .default,
                                   memoryGeometry: (pageSize: Int, pageCount: UInt64)? = nil) throws -> Message {
        try frame.withUnsafeBytes { raw in
            guard raw.count >= WireProtocol.headerSize else {
                throw WireError.truncated(field: "frame.header", needed: WireProtocol.headerSize, available: raw.count)
            }
            let header = try FrameHeader.decode(UnsafeRawBufferPointer(rebasing: raw[0..<WireProtocol.headerSize]),
                                                limits: limits)
            let body = UnsafeRawBufferPointer(rebasing: raw[WireProtocol.headerSize...])
            guard body.count == Int(header.length) else {
                if body.count < Int(header.length) {
                    throw WireError.truncated(field: "frame.payload", needed: Int(header.length), available: body.count)
                }
                throw WireError.trailingBytes(message: header.type, count: body.count - Int(header.length))
            }
            return try decode(type: header.type, payload: body, limits: limits, memoryGeometry: memoryGeometry)
        }
    }
}
