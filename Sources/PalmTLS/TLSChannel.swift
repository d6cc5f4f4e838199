import PalmCrypto
import COpenSSLShims
import Foundation
import PalmSupport
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// One mutually authenticated TLS 1.3 connection with blocking reads and writes.
///
/// A channel exists only after the full handshake succeeded **and** palm's channel confirmation
/// was exchanged: in TLS 1.3 a client whose certificate the server refuses learns it only on its
/// first read, so ``connect(host:port:serverName:context:)`` reads the server's confirmation before
/// it returns. Either side therefore gets the refusal as a named ``TLSError`` from connect/accept.
///
/// All waits are bounded: connect by ``TLSConfiguration/connectTimeout``, the handshake by
/// ``TLSConfiguration/handshakeTimeout`` (non-blocking socket and poll against one deadline), each
/// read or write afterwards by ``TLSConfiguration/ioTimeout`` without progress (blocking socket
/// with SO_RCVTIMEO/SO_SNDTIMEO). Large writes gather their records in a send buffer of
/// ``TLSConfiguration/sendBuffer`` bytes and leave in as few system calls as it allows.
///
/// Threads: reads, writes and `close()` belong to one thread at a time (the channel's owner).
/// ``interrupt()`` is the one call any other thread may make: it shuts the socket down so that an
/// owner blocked in a read or write wakes with an error, without touching OpenSSL's state.
public final class TLSChannel: ByteStream, @unchecked Sendable {
    private let ssl: OpaquePointer
    private let fd: Int32
    /// Whether `close()` has run. Its lock serialises `interrupt()` (any thread) against `close()`
    /// (the owner), so a closed — and possibly reused — descriptor is never shut down.
    private let closed = LockedValueBox(false)
    /// Set once the handshake is over; then WANT_READ/WANT_WRITE mean the socket timed out.
    private var isBlocking = false
    /// Bytes of records to gather per send, set once the channel is established (0 before).
    private var sendBuffer = 0
    /// Whether the send buffer is in place: from the first write of more than two records on,
    /// so a channel that only ever carries small messages never allocates it.
    private var gathering = false
    /// The authenticated peer.
    public let peer: CertificateIdentity
    /// The peer certificate's public key, for verifying what the peer signs on this channel.
    public let peerKey: VerifyingKey
    public let remoteHost: String
    public let remotePort: UInt16
    public private(set) var ioTimeout: Double
    /// The negotiated cipher suite, e.g. `TLS_AES_256_GCM_SHA384`.
    public let cipherSuite: String

    /// Sent by the server right after its handshake; proves to the client it was accepted.
    static let confirmation: [UInt8] = Array("PALMTLS1".utf8)

    private enum Side { case client(serverName: String), server }

    private init(ssl: OpaquePointer, fd: Int32, peer: CertificateIdentity, peerKey: VerifyingKey, ioTimeout: Double) {
        self.ssl = ssl
        self.fd = fd
        self.peer = peer
        self.peerKey = peerKey
        self.ioTimeout = ioTimeout
        (remoteHost, remotePort) = TCPSocket.address(fd, peer: true)
        cipherSuite = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? "?"
    }

    deinit { close() }

    /// Connects, verifies the server's certificate chain and that it names `serverName`
    /// (default: `host`, as a DNS name or IP address), and waits for the server's confirmation.
    /// `from` binds the connection to a local address first (a multi-homed host's management address).
    public static func connect(host: String, port: UInt16, serverName: String? = nil,
                               context: TLSContext, from local: String? = nil) throws -> TLSChannel {
        let config = context.configuration
        let fd = try TCPSocket.connect(host: host, port: port, timeout: config.connectTimeout, from: local)
        return try handshake(fd: fd, side: .client(serverName: serverName ?? host), context: context)
    }

    /// Runs the server side of the handshake on an accepted socket (takes ownership of `fd`),
    /// within `timeout` seconds (default: the context's handshake timeout).
    public static func accept(socket fd: Int32, context: TLSContext, timeout: Double? = nil) throws -> TLSChannel {
        try handshake(fd: fd, side: .server, context: context, timeout: timeout)
    }

    private static func handshake(fd: Int32, side: Side, context: TLSContext, timeout: Double? = nil) throws -> TLSChannel {
        TCPSocket.setNonBlocking(fd)
        TCPSocket.setNoDelay(fd)
        guard let ssl = SSL_new(context.ctx) else {
            Glibc.close(fd)
            throw TLSError.tlsFailure(detail: "SSL_new: \(OpenSSLErrors.summary())")
        }
        var expectedName: String?
        let peer: CertificateIdentity
        let peerKey: VerifyingKey
        let deadline = Deadline(seconds: min(timeout ?? .infinity, context.configuration.handshakeTimeout))
        do {
            SSL_set_fd(ssl, fd)
            switch side {
            case let .client(name):
                expectedName = name
                SSL_set_verify(ssl, SSL_VERIFY_PEER, palmVerifyCallback)
                if isIPAddress(name) {
                    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
                } else {
                    _ = palm_ssl_set_tlsext_host_name(ssl, name)
                    SSL_set1_host(ssl, name)
                }
                SSL_set_connect_state(ssl)
            case .server:
                SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, palmVerifyCallback)
                SSL_set_accept_state(ssl)
            }
            _ = try drive(ssl: ssl, fd: fd, operation: "TLS handshake", deadline: deadline, expectedName: expectedName) {
                SSL_do_handshake(ssl)
            }
            guard let peerCert = SSL_get0_peer_certificate(ssl) else { throw TLSError.noPeerCertificate }
            peer = CertificateIdentity(certificate: peerCert)
            peerKey = try TLSError.reporting { try VerifyingKey(x509: peerCert) }
        } catch {
            SSL_free(ssl)
            Glibc.close(fd)
            if case .handshakeFailed = error as? TLSError, let failure = context.key.lastExternalFailure {
                throw TLSError.localKeyFailed(location: context.key.location, detail: "\(failure)")
            }
            throw error
        }
        // From here the channel owns ssl and fd; closing it releases both.
        let channel = TLSChannel(ssl: ssl, fd: fd, peer: peer, peerKey: peerKey, ioTimeout: context.configuration.ioTimeout)
        do {
            switch side {
            case .server:
                try channel.write(confirmation, deadline: deadline)
            case .client:
                // The first read is where a TLS 1.3 client learns that the server refused its certificate.
                var got = [UInt8](repeating: 0, count: confirmation.count)
                try got.withUnsafeMutableBytes { try channel.readExactly(into: $0, deadline: deadline) }
                guard got == confirmation else { throw TLSError.notPalmPeer }
            }
        } catch {
            channel.close()
            throw error
        }
        // After the handshake: blocking I/O (fewer system calls on the page path), each call
        // bounded by the I/O timeout through SO_RCVTIMEO / SO_SNDTIMEO.
        TCPSocket.setBlocking(fd, timeout: context.configuration.ioTimeout)
        channel.isBlocking = true
        channel.sendBuffer = context.configuration.sendBuffer
        return channel
    }

    /// True for an IPv4 or IPv6 address literal (what `inet_pton` accepts), false for a host name.
    public static func isIPAddress(_ s: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }

    /// Runs one OpenSSL call until it succeeds, waiting on the socket as it asks, within `deadline`.
    @discardableResult
    private static func drive(ssl: OpaquePointer, fd: Int32, operation: String, deadline: Deadline,
                              blocking: Bool = false, expectedName: String? = nil,
                              _ call: () -> Int32) throws -> Int32 {
        while true {
            ERR_clear_error()
            errno = 0
            let r = call()
            if r > 0 { return r }
            let savedErrno = errno
            let e = SSL_get_error(ssl, r)
            switch e {
            case SSL_ERROR_WANT_READ where blocking, SSL_ERROR_WANT_WRITE where blocking:
                throw TLSError.timeout(operation: operation, seconds: deadline.seconds)
            case SSL_ERROR_WANT_READ:
                try TCPSocket.wait(fd, for: Int16(POLLIN), deadline: deadline, operation: operation)
            case SSL_ERROR_WANT_WRITE:
                try TCPSocket.wait(fd, for: Int16(POLLOUT), deadline: deadline, operation: operation)
            default:
                throw TLSFailure.map(ssl: ssl, sslError: e, savedErrno: savedErrno, operation: operation,
                                     expectedServerName: expectedName)
            }
        }
    }

    // MARK: I/O

    /// Reads at least one byte (at most `buffer.count`). Throws ``TLSError/peerClosed`` at the end
    /// of the stream and ``TLSError/recordIntegrity`` for a tampered record — data from a record
    /// that failed authentication is never returned.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try read(into: buffer, deadline: Deadline(seconds: ioTimeout))
    }

    private func read(into buffer: UnsafeMutableRawBufferPointer, deadline: Deadline) throws -> Int {
        guard !closed.current else { throw TLSError.closed }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        var n = 0
        try TLSChannel.drive(ssl: ssl, fd: fd, operation: "read", deadline: deadline, blocking: isBlocking) {
            SSL_read_ex(ssl, base, buffer.count, &n)
        }
        return n
    }

    private func readExactly(into buffer: UnsafeMutableRawBufferPointer, deadline: Deadline) throws {
        var filled = 0
        while filled < buffer.count {
            filled += try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]), deadline: deadline)
        }
    }

    /// Writes all of `bytes` and hands every record to the socket before it returns; each
    /// stretch without progress is bounded by the I/O timeout.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !closed.current else { throw TLSError.closed }
        if !gathering, sendBuffer > Self.recordSize, bytes.count > 2 * Self.recordSize {
            try gatherSends(upTo: sendBuffer)
            gathering = true
        }
        try writeAll(bytes) { Deadline(seconds: ioTimeout) }
        try flush()
    }

    /// Writes all of `bytes` within one deadline (the handshake's).
    private func write(_ bytes: [UInt8], deadline: Deadline) throws {
        try bytes.withUnsafeBytes { raw in try writeAll(raw) { deadline } }
    }

    /// Writes all of `bytes`, each call to `SSL_write_ex` bounded by the deadline `deadline()`
    /// gives for it (a fresh one per stretch without progress, or one for the whole write).
    private func writeAll(_ bytes: UnsafeRawBufferPointer, deadline: () -> Deadline) throws {
        var offset = 0
        while offset < bytes.count {
            offset += try writeSome(UnsafeRawBufferPointer(rebasing: bytes[offset...]), deadline: deadline())
        }
    }

    /// The most application data one TLS record carries.
    static let recordSize = 16 << 10

    /// From now on OpenSSL writes its records into a buffer of `size` bytes in front of the
    /// socket, and ``write(_:)`` sends them in as few system calls as the buffer allows (OpenSSL
    /// alone makes one per 16 KiB record). OpenSSL flushes its own alerts and handshake messages.
    private func gatherSends(upTo size: Int) throws {
        guard let socket = SSL_get_wbio(ssl), let buffer = BIO_new(BIO_f_buffer()) else {
            throw TLSError.tlsFailure(detail: "send buffer: \(OpenSSLErrors.summary())")
        }
        guard BIO_int_ctrl(buffer, BIO_C_SET_BUFF_SIZE, size, 1) == 1, BIO_up_ref(socket) == 1 else {
            BIO_free(buffer)
            throw TLSError.tlsFailure(detail: "send buffer of \(size) bytes: \(OpenSSLErrors.summary())")
        }
        // The chain holds its own reference to the socket BIO; SSL_set0_wbio releases the one
        // the SSL held as its write BIO (the socket BIO stays its read BIO).
        _ = BIO_push(buffer, socket)
        SSL_set0_wbio(ssl, buffer)
    }

    /// Sends what the send buffer holds; a write is complete only when this returned. The buffer
    /// exists only on an established (blocking) channel, so a flush that would block has met the
    /// socket's send timeout; a failed one is named as a failed SSL_write would be.
    private func flush() throws {
        guard gathering, let wbio = SSL_get_wbio(ssl) else { return }
        ERR_clear_error()
        errno = 0
        guard BIO_ctrl(wbio, BIO_CTRL_FLUSH, 0, nil) <= 0 else { return }
        let savedErrno = errno
        if BIO_test_flags(wbio, BIO_FLAGS_SHOULD_RETRY) != 0 { throw TLSError.timeout(operation: "write", seconds: ioTimeout) }
        throw TLSFailure.map(ssl: ssl, sslError: SSL_ERROR_SYSCALL, savedErrno: savedErrno, operation: "write", expectedServerName: nil)
    }

    private func writeSome(_ bytes: UnsafeRawBufferPointer, deadline: Deadline) throws -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        var written = 0
        try TLSChannel.drive(ssl: ssl, fd: fd, operation: "write", deadline: deadline, blocking: isBlocking) {
            SSL_write_ex(ssl, base, bytes.count, &written)
        }
        return written
    }

    /// Changes the bound on each read and write from now on (e.g. a short deadline for a peer's
    /// first message, then the normal one). Owner only.
    public func setIOTimeout(_ seconds: Double) {
        ioTimeout = seconds
        if isBlocking { TCPSocket.setBlocking(fd, timeout: seconds) }
    }

    /// The socket, for readiness polling only (reads and writes go through the channel).
    public var descriptor: Int32 { fd }

    /// Decrypted or received bytes that OpenSSL holds already: the next read will not wait for
    /// the socket, so a poll on ``descriptor`` would not see them.
    public var hasBufferedInput: Bool { !closed.current && SSL_has_pending(ssl) == 1 }

    /// The lowest round-trip time TCP measured on this connection (TCP_INFO), in seconds.
    public var roundTripTime: Double? { TCPSocket.roundTripTime(fd) }

    /// RFC 8446 §7.5 exporter: keying material bound to this session, for channel binding.
    public func exportKeyingMaterial(label: String, context: [UInt8]? = nil, length: Int = 32) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let rc = label.withCString { l in
            (context ?? []).withUnsafeBufferPointer { c in
                SSL_export_keying_material(ssl, &out, length, l, strlen(l), c.baseAddress, c.count,
                                           context == nil ? 0 : 1)
            }
        }
        guard rc == 1 else { throw TLSError.tlsFailure(detail: "exporter: \(OpenSSLErrors.summary())") }
        return out
    }

    /// Sends close_notify (best effort, without waiting) and releases the connection. Owner only.
    public func close() {
        closed.withLockedValue { isClosed in
            guard !isClosed else { return }
            isClosed = true
            ERR_clear_error()
            _ = SSL_shutdown(ssl)
            _ = OpenSSLErrors.drain()
            SSL_free(ssl)
            Glibc.close(fd)
        }
    }

    /// Wakes the owner from a blocked read — and, unless `keepWriting`, a blocked write — by
    /// shutting the socket down (it then fails with a channel error); with `keepWriting` the owner
    /// can still send, e.g. an ABORT naming the reason. Safe from any thread, at any time, any
    /// number of times.
    public func interrupt(keepWriting: Bool = false) {
        closed.withLockedValue { isClosed in
            guard !isClosed else { return }
            _ = Glibc.shutdown(fd, Int32(keepWriting ? SHUT_RD : SHUT_RDWR))
        }
    }
}
