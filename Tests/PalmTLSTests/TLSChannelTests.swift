import Foundation
import PalmCrypto
import PalmTLS
import PalmTestSupport
import PalmWire
import Testing
import PalmSecurity

/// Accepts one connection on a background thread and runs `body` on the channel.
private func serveOnce<T>(_ listener: TLSListener, _ body: @escaping (TLSChannel) throws -> T) -> Background<T> {
    Background {
        guard let channel = try listener.accept(timeout: 20) else { throw TLSError.timeout(operation: "test accept", seconds: 20) }
        defer { channel.close() }
        return try body(channel)
    }
}

private func listener(_ name: String = "server", withCRL: Bool = false, handshakeTimeout: Double = 10) throws -> TLSListener {
    try TLSListener(host: "127.0.0.1", port: 0,
                    context: TestPKI.shared.context(name, withCRL: withCRL, handshakeTimeout: handshakeTimeout))
}

@Suite("PalmTLS mutual authentication")
struct HandshakeTests {
    let pki = TestPKI.shared

    @Test("valid certificates: both sides see each other's identity, role, fingerprint and exporter")
    func handshakeSucceeds() throws {
        let l = try listener()
        let server = serveOnce(l) { ch -> (CertificateIdentity, [UInt8], [UInt8]) in
            var buf = [UInt8](repeating: 0, count: 5)
            try buf.withUnsafeMutableBytes { try ch.readExactly(into: $0) }
            try ch.write(Array("world".utf8))
            return (ch.peer, try ch.exportKeyingMaterial(label: "EXPORTER-palm-test"), buf)
        }
        let client = try TLSChannel.connect(host: "127.0.0.1", port: l.port, context: pki.context("client"))
        try client.write(Array("hello".utf8))
        var reply = [UInt8](repeating: 0, count: 5)
        try reply.withUnsafeMutableBytes { try client.readExactly(into: $0) }
        let clientExporter = try client.exportKeyingMaterial(label: "EXPORTER-palm-test")
        let (serverSawPeer, serverExporter, got) = try server.value()
        client.close()

        #expect(String(decoding: got, as: UTF8.self) == "hello")
        #expect(String(decoding: reply, as: UTF8.self) == "world")
        #expect(client.cipherSuite.hasPrefix("TLS_AES_256_GCM"))

        #expect(client.peer.commonName == "server")
        #expect(client.peer.role == .agent)
        #expect(client.peer.dnsNames.contains("localhost"))
        #expect(client.peer.ipAddresses == ["127.0.0.1"])
        #expect(client.peer.fingerprint == (try CertificateIdentity.load(pemFile: pki.cert("server")).fingerprint))

        #expect(serverSawPeer.commonName == "client")
        #expect(serverSawPeer.subject == "O=palm,CN=client")
        #expect(serverSawPeer.role == .agent)
        #expect(serverSawPeer.fingerprint == (try CertificateIdentity.load(pemFile: pki.cert("client")).fingerprint))
        #expect(serverSawPeer.fingerprint != client.peer.fingerprint)

        #expect(clientExporter == serverExporter)
        #expect(clientExporter.count == 32)
    }

    @Test("an operator certificate carries its role; a coordinator certificate its own")
    func rolesAreRead() throws {
        for (name, role) in [("alice", Role.operator), ("coord", Role.coordinator)] {
            let l = try listener()
            let server = serveOnce(l) { $0.peer }
            let client = try TLSChannel.connect(host: "127.0.0.1", port: l.port, context: pki.context(name))
            let seen = try server.value()
            client.close()
            #expect(seen.role == role)
            #expect(seen.uris == ["palm:role:\(role.rawValue)"])
        }
    }

    @Test("exporters differ between sessions (what channel binding relies on)")
    func exportersAreSessionBound() throws {
        var values: [[UInt8]] = []
        for _ in 0..<2 {
            let l = try listener()
            let server = serveOnce(l) { try $0.exportKeyingMaterial(label: "EXPORTER-palm") }
            let c = try TLSChannel.connect(host: "127.0.0.1", port: l.port, context: pki.context("client"))
            values.append(try c.exportKeyingMaterial(label: "EXPORTER-palm"))
            #expect(try server.value() == values.last)
            c.close()
        }
        #expect(values[0] != values[1])
    }

    @Test("a clean close reaches the peer as peerClosed")
    func peerClosed() throws {
        let l = try listener()
        let server = serveOnce(l) { ch -> Void in
            var b = [UInt8](repeating: 0, count: 1)
            _ = try b.withUnsafeMutableBytes { try ch.read(into: $0) }
        }
        let c = try TLSChannel.connect(host: "127.0.0.1", port: l.port, context: pki.context("client"))
        c.close()
        #expect(server.error as? TLSError == .peerClosed)
    }
}

/// Write system calls this thread has made so far (/proc/thread-self/io).
private func writeCallsOfThisThread() -> Int {
    let text = (try? String(contentsOfFile: "/proc/thread-self/io", encoding: .utf8)) ?? ""
    return text.split(separator: "\n").first { $0.hasPrefix("syscw:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) } ?? -1
}

@Suite("PalmTLS send buffer")
struct SendBufferTests {
    let pki = TestPKI.shared

    /// Writes 1 MiB in one call from a client whose send buffer is `sendBuffer` bytes; returns the
    /// write system calls it took and whether the server read the same bytes.
    func writeOneMiB(sendBuffer: Int) throws -> (calls: Int, intact: Bool) {
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        let l = try listener()
        let server = serveOnce(l) { ch -> [UInt8] in
            var got = [UInt8](repeating: 0, count: payload.count)
            try got.withUnsafeMutableBytes { try ch.readExactly(into: $0) }
            return got
        }
        var config = pki.configuration("client")
        config.sendBuffer = sendBuffer
        let client = try TLSChannel.connect(host: "127.0.0.1", port: l.port, context: TLSContext(configuration: config))
        defer { client.close() }
        let before = writeCallsOfThisThread()
        try client.write(payload)
        let calls = writeCallsOfThisThread() - before
        return (calls, try server.value() == payload)
    }

    @Test("a 1 MiB write leaves in one send per 256 KiB of records, not one per 16 KiB record; the bytes arrive intact")
    func recordsAreGathered() throws {
        let gathered = try writeOneMiB(sendBuffer: 256 << 10)
        #expect(gathered.intact)
        #expect(gathered.calls >= 4 && gathered.calls <= 6, "write calls with a 256 KiB send buffer: \(gathered.calls)")
        // A buffer of one record's size gathers nothing: OpenSSL's one write per record.
        let single = try writeOneMiB(sendBuffer: 16 << 10)
        #expect(single.intact)
        #expect(single.calls >= 64, "write calls with a 16 KiB send buffer: \(single.calls)")
    }
}

@Suite("PalmTLS refuses")
struct RefusalTests {
    let pki = TestPKI.shared

    /// Connects `clientName`'s certificate to a fresh listener; returns (client error, server error).
    func attempt(client clientName: String, clientFromOtherCA: Bool = false, serverWithCRL: Bool = false) throws
        -> (client: TLSError?, server: TLSError?) {
        let l = try listener(withCRL: serverWithCRL)
        let server = serveOnce(l) { _ in () }
        var clientError: TLSError?
        do {
            let c = try TLSChannel.connect(host: "127.0.0.1", port: l.port,
                                           context: pki.context(clientName, other: clientFromOtherCA))
            c.close()
        } catch let e as TLSError {
            clientError = e
        }
        return (clientError, server.error as? TLSError)
    }

    @Test("a client certificate from another CA")
    func otherCA() throws {
        let (c, s) = try attempt(client: "intruder", clientFromOtherCA: true)
        guard case .unknownCA = s else { Issue.record("server: \(String(describing: s))"); return }
        #expect(c == .rejectedByPeer(.unknownCA))
    }

    @Test("an expired client certificate")
    func expired() throws {
        let (c, s) = try attempt(client: "expired")
        #expect(s == .certificateExpired)
        #expect(c == .rejectedByPeer(.certificateExpired))
    }

    @Test("a client certificate that is not yet valid")
    func notYetValid() throws {
        let (c, s) = try attempt(client: "future")
        #expect(s == .certificateNotYetValid)
        #expect(c == .rejectedByPeer(.badCertificate))
    }

    @Test("a revoked client certificate when the CRL is configured (accepted without it)")
    func revoked() throws {
        let (c, s) = try attempt(client: "revoked", serverWithCRL: true)
        #expect(s == .certificateRevoked)
        #expect(c == .rejectedByPeer(.certificateRevoked))
        // The same certificate passes when no CRL is configured: the CRL is what refused it.
        let (c2, s2) = try attempt(client: "revoked", serverWithCRL: false)
        #expect(c2 == nil && s2 == nil)
    }

    @Test("a valid client passes a server that checks the CRL")
    func validWithCRL() throws {
        let (c, s) = try attempt(client: "client", serverWithCRL: true)
        #expect(c == nil && s == nil)
    }

    @Test("a server certificate from another CA, seen by the client")
    func serverFromOtherCA() throws {
        let l = try TLSListener(host: "127.0.0.1", port: 0, context: pki.context("intruder", other: true))
        let server = serveOnce(l) { _ in () }
        #expect {
            _ = try TLSChannel.connect(host: "127.0.0.1", port: l.port, context: pki.context("client"))
        } throws: { error in
            if case .unknownCA = error as? TLSError { return true }
            return false
        }
        #expect(server.error != nil)
    }

    @Test("a server whose certificate does not name the host the client asked for")
    func wrongServerName() throws {
        let l = try listener()
        let server = serveOnce(l) { _ in () }
        #expect(throws: TLSError.serverNameMismatch(expected: "node-b")) {
            _ = try TLSChannel.connect(host: "127.0.0.1", port: l.port, serverName: "node-b", context: pki.context("client"))
        }
        #expect(server.error as? TLSError == .rejectedByPeer(.badCertificate))
    }

    @Test("an RSA leaf in our own configuration: the context refuses to load it")
    func rsaLocal() throws {
        #expect(throws: TLSError.localKeyNotECDSA(path: pki.cert("rsa"))) {
            _ = try TLSContext(configuration: pki.configuration("rsa"))
        }
    }

    @Test("a key that does not match the certificate")
    func keyMismatch() throws {
        var config = pki.configuration("client")
        config.privateKey = pki.key("server")
        #expect(throws: TLSError.keyMismatch(certificate: config.certificateChain, key: config.privateKey)) {
            _ = try TLSContext(configuration: config)
        }
    }
}

@Suite("PalmTLS against the real openssl s_client / s_server")
struct OpenSSLPeerTests {
    let pki = TestPKI.shared

    /// Runs `openssl s_client` against a palm listener; returns the listener's error and s_client's status.
    func sClient(_ extra: [String]) throws -> (TLSError?, Int32) {
        let l = try listener()
        let server = serveOnce(l) { _ in () }
        let r = try ProcessRunner.run("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(l.port)",
                                                           "-CAfile", pki.caCert, "-verify_return_error"] + extra)
        return (server.error as? TLSError, r.status)
    }

    @Test("a client without any certificate")
    func noCertificate() throws {
        let (e, _) = try sClient(["-tls1_3"])
        #expect(e == .noPeerCertificate)
    }

    @Test("openssl s_client -tls1_2 is refused with a protocol-version error")
    func tls12() throws {
        let (e, status) = try sClient(["-tls1_2", "-cert", pki.cert("client"), "-key", pki.key("client")])
        guard case .protocolVersion = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(status != 0)
    }

    @Test("an RSA leaf signed by the cluster CA is refused as the wrong key type")
    func rsaPeer() throws {
        let (e, _) = try sClient(["-tls1_3", "-cert", pki.cert("rsa"), "-key", pki.key("rsa")])
        #expect(e == .wrongKeyType)
    }

    @Test("a palm client refuses an RSA server certificate signed by the cluster CA")
    func rsaServer() throws {
        // s_server serves the RSA leaf on a port reserved from a palm listener first.
        let reserve = try listener()
        let port = reserve.port
        reserve.close()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", pki.cert("rsa"), "-key", pki.key("rsa"),
                       "-CAfile", pki.caCert, "-tls1_3", "-naccept", "1"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = Pipe()
        try p.run()
        defer { p.terminate(); p.waitUntilExit() }
        // s_server prints ACCEPT once it listens.
        var seen = ""
        while !seen.contains("ACCEPT") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        #expect(seen.contains("ACCEPT"))
        var result: Error?
        do {
            _ = try TLSChannel.connect(host: "127.0.0.1", port: port, context: pki.context("client"))
        } catch {
            result = error
        }
        #expect(result as? TLSError == .wrongKeyType)
    }
}

@Suite("PalmTLS integrity and timeouts")
struct IntegrityTests {
    let pki = TestPKI.shared

    @Test("a byte flipped in flight: the receiver fails with recordIntegrity and gets no corrupted data")
    func tamperedRecord() throws {
        let l = try listener()
        let received = serveOnce(l) { ch -> ([UInt8], Error?) in
            var got: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            do {
                while true {
                    let n = try buf.withUnsafeMutableBytes { try ch.read(into: $0) }
                    got.append(contentsOf: buf[0..<n])
                }
            } catch {
                return (got, error)
            }
        }
        let proxy = try TamperingProxy(upstreamPort: l.port, targetRecord: 12)
        let client = try TLSChannel.connect(host: "127.0.0.1", port: proxy.port, serverName: "127.0.0.1",
                                            context: pki.context("client"))
        var pattern = [UInt8](repeating: 0, count: 1 << 20)
        for i in pattern.indices { pattern[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 8) }
        try? client.write(pattern)
        let (got, error) = try received.value()
        client.close()

        #expect(proxy.tampered)
        #expect(error as? TLSError == .recordIntegrity)
        #expect(got.count < pattern.count)
        #expect(got == Array(pattern.prefix(got.count)), "data before the tampered record must be intact")
    }

    @Test("a silent server cannot hang a client: the handshake times out")
    func silentServer() throws {
        let raw = try listener()  // accepts TCP but never runs TLS
        let accepted = Background { try raw.acceptSocket(timeout: 20) }
        var config = pki.configuration("client", handshakeTimeout: 0.5)
        config.handshakeTimeout = 0.5
        let ctx = try TLSContext(configuration: config)
        #expect(throws: TLSError.timeout(operation: "TLS handshake", seconds: 0.5)) {
            _ = try TLSChannel.connect(host: "127.0.0.1", port: raw.port, context: ctx)
        }
        if let fd = try accepted.value() { close(fd) }
    }

    @Test("a silent client cannot hang a server: the server handshake times out")
    func silentClient() throws {
        let l = try listener(handshakeTimeout: 0.5)
        let server = serveOnce(l) { _ in () }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = l.port.bigEndian
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(rc == 0)
        #expect(server.error as? TLSError == .timeout(operation: "TLS handshake", seconds: 0.5))
        close(fd)
    }

    @Test("a peer that stops sending after the handshake: a read times out instead of hanging")
    func silentAfterHandshake() throws {
        let l = try TLSListener(host: "127.0.0.1", port: 0, context: pki.context("server", ioTimeout: 0.5))
        let server = serveOnce(l) { ch -> Int in
            var b = [UInt8](repeating: 0, count: 16)
            return try b.withUnsafeMutableBytes { try ch.read(into: $0) }
        }
        let c = try TLSChannel.connect(host: "127.0.0.1", port: l.port, context: pki.context("client"))
        #expect(server.error as? TLSError == .timeout(operation: "read", seconds: 0.5))
        c.close()
    }

    @Test("connecting to a closed port is a named connect failure")
    func connectRefused() throws {
        let l = try listener()
        let port = l.port
        l.close()
        #expect {
            _ = try TLSChannel.connect(host: "127.0.0.1", port: port, context: pki.context("client"))
        } throws: { error in
            if case .connectFailed(_, port, _) = error as? TLSError { return true }
            return false
        }
    }
}
