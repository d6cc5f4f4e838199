/// One decoded message of protocol version 1. `encodeFrame` and `decode` are exact inverses for
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
    case prepared
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
        case .resolve: return .resolve
        case .resolution: return .resolution
        case .done: return .done
        case .abort: return .abort
        case .error: return .error
        }
    }

    /// The complete frame: header plus payload.
    public func encodeFrame() -> [UInt8] {
        if case let .memory(batch) = self {
            let pageSize = batch.pages.first(where: { $0.data != nil })?.data?.count ?? 4096
            var enc = MemoryBatchEncoder(pageSize: pageSize, capacityPages: batch.pages.count)
            enc.begin(round: batch.round)
            for page in batch.pages {
                if let data = page.data {
                    data.withUnsafeBytes { enc.append(pfn: page.pfn, page: $0) }
                } else {
                    enc.appendZero(pfn: page.pfn)
                }
            }
            return enc.finish()
        }
        var w = ByteWriter()
        FrameHeader(type: type, length: 0).encode(into: &w)
        encodePayload(into: &w)
        w.patch(UInt32(w.count - WireProtocol.headerSize), at: WireProtocol.headerSize - 4)
        return w.bytes
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
        case .memory:
            preconditionFailure("MEMORY is encoded by MemoryBatchEncoder")
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
        case .done, .prepared:
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
            message = .attest(Attestation(
                sourceNonce: try r.readDigest("attest.nonce"),
                exporter: try r.readDigest("attest.exporter"),
                agentDigest: try r.readDigest("attest.agentDigest"),
                configDigest: try r.readDigest("attest.configDigest"),
                hypervisor: try r.readString("attest.hypervisor", limit: limits.maxString),
                hypervisorVersion: try r.readString("attest.hypervisorVersion", limit: limits.maxString),
                timestampMillis: try r.readUInt64("attest.timestamp"),
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
            message = .config(VMConfig(
                name: name, mode: mode, pageSize: pageSize, pageCount: pageCount, vcpus: vcpus,
                hypervisor: try r.readString("config.hypervisor", limit: limits.maxString),
                platform: try r.readLengthPrefixed("config.platform", limit: limits.maxPlatformConfig)))
        case .memory:
            guard let geometry = memoryGeometry else {
                throw WireError.unexpectedMessage(.memory, state: "no CONFIG received")
            }
            var pages: [MemoryBatch.Page] = []
            let round = try MemoryBatchDecoder.forEachPage(in: payload, pageSize: geometry.pageSize,
                                                           pageCount: geometry.pageCount) { pfn, data in
                pages.append(MemoryBatch.Page(pfn: pfn, data: data.map { Array($0) }))
            }
            return .memory(MemoryBatch(round: round, pages: pages))
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
            message = .prepared
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
