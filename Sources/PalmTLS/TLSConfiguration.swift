/// Where a PalmTLS endpoint finds its credentials and how long it waits. Both sides of every palm
/// connection use the same shape: a host (or operator) certificate chain with its ECDSA key, the
/// cluster CA as the only trust root, and optionally the CA's CRL.
public struct TLSConfiguration: Sendable, Equatable {
    /// PEM file: the leaf certificate first, then any intermediates.
    public var certificateChain: String
    /// PEM file with the leaf's ECDSA private key, or ``tpmKey``: the key is the host's TPM's
    /// (given to ``TLSContext`` by the agent that opened the TPM).
    public var privateKey: String
    /// PEM file with the cluster CA certificate(s) — the only trust roots.
    public var trustRoots: String
    /// PEM file with the CA's CRL; when set, every peer certificate is checked against it.
    public var crl: String?
    /// Seconds allowed for TCP connect.
    public var connectTimeout: Double
    /// Seconds allowed for the whole TLS handshake including palm's channel confirmation.
    public var handshakeTimeout: Double
    /// Seconds a single read or write may wait without progress.
    public var ioTimeout: Double
    /// Bytes of TLS records an established channel gathers before it hands them to the socket in
    /// one send (every write is flushed before it returns): a 1 MiB page batch leaves in four
    /// sends instead of 64 one-record ones. Allocated by a channel on its first write of more
    /// than two records — only after the peer authenticated, never for small messages.
    public var sendBuffer: Int

    /// `tls.key = "tpm"`: the private key never leaves the host's TPM.
    public static let tpmKey = "tpm"
    /// True when the configuration names the TPM's key rather than a file.
    public var keyIsInTPM: Bool { privateKey == Self.tpmKey }

    /// The range ``sendBuffer`` must lie in: from about one record to a few page batches.
    public static let sendBufferRange = (16 << 10)...(16 << 20)
    /// ``sendBuffer`` unless configured: a quarter of a default 256-page batch per send.
    public static let defaultSendBuffer = 256 << 10

    public init(certificateChain: String, privateKey: String, trustRoots: String, crl: String? = nil,
                connectTimeout: Double = 5, handshakeTimeout: Double = 10, ioTimeout: Double = 60,
                sendBuffer: Int = TLSConfiguration.defaultSendBuffer) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.trustRoots = trustRoots
        self.crl = crl
        self.connectTimeout = connectTimeout
        self.handshakeTimeout = handshakeTimeout
        self.ioTimeout = ioTimeout
        self.sendBuffer = sendBuffer
    }
}
