/// What a destination's TPM says about its platform for one session, carried in ATTEST
/// (protocol version 3). Opaque TPM structures, decoded and checked by the verifier
/// (PalmSecurity's `PlatformAttestationVerifier`); the wire layer only bounds their sizes.
///
/// ```text
///   +-----+------------+-------+-----------+-------------------------------+-----------+-----------+
///   | key | quote      | sig   | n u8      | n × (pcr u8 | sha256[32])     | boot log  | IMA log   |
///   | u16 | u16+bytes  | u16+… |           |                               | u32+bytes | u32+bytes |
///   +-----+------------+-------+-----------+-------------------------------+-----------+-----------+
///   +-----------+------------------------------------------------+
///   | tls u8    | (tls = 1) tls key | certify info | certify sig |
///   | 0 or 1    |           u16+…   | u16+…        | u16+…       |
///   +-----------+------------------------------------------------+
///   key   = TPMT_PUBLIC of the attestation key (its name must be the host's enrolled AK)
///   quote = TPMS_ATTEST of TPM2_Quote, qualifying data = SHA-256("palm-tpm-quote-v1" ‖ nonce ‖
///           exporter ‖ ticket id); sig = TPMT_SIGNATURE over it
///   boot log = the TCG PC Client event log (crypto agile); IMA log = binary_runtime_measurements
///   tls key = TPMT_PUBLIC of the key that terminates this TLS session, when it lives in the TPM;
///   certify info = TPMS_ATTEST of TPM2_Certify of it by the attestation key, qualifying data =
///           SHA-256("palm-tpm-tls-key-v1" ‖ the certificate's SubjectPublicKeyInfo)
/// ```
public struct PlatformEvidence: Equatable, Sendable {
    /// One PCR of the SHA-256 bank.
    public struct PCRValue: Equatable, Sendable {
        public var index: Int
        public var value: Digest32
        public init(index: Int, value: Digest32) {
            self.index = index
            self.value = value
        }
    }

    public var attestationKey: [UInt8]
    public var quote: [UInt8]
    public var signature: [UInt8]
    /// The quoted PCRs' values, in index order.
    public var pcrValues: [PCRValue]
    public var bootLog: [UInt8]
    public var imaLog: [UInt8]
    /// The attestation key's certification of the TLS key, when the TLS key lives in the TPM.
    public var tlsKey: KeyCertification?

    /// TPM2_Certify of one key by the attestation key: the TPM says the key of that public area
    /// is one of its own objects.
    public struct KeyCertification: Equatable, Sendable {
        /// TPMT_PUBLIC of the certified key.
        public var publicArea: [UInt8]
        /// TPMS_ATTEST of TPM2_Certify (the signed bytes) and the AK's TPMT_SIGNATURE over it.
        public var certifyInfo: [UInt8]
        public var signature: [UInt8]

        public init(publicArea: [UInt8], certifyInfo: [UInt8], signature: [UInt8]) {
            self.publicArea = publicArea
            self.certifyInfo = certifyInfo
            self.signature = signature
        }
    }

    public init(attestationKey: [UInt8], quote: [UInt8], signature: [UInt8], pcrValues: [PCRValue], bootLog: [UInt8], imaLog: [UInt8],
                tlsKey: KeyCertification? = nil) {
        self.attestationKey = attestationKey
        self.quote = quote
        self.signature = signature
        self.pcrValues = pcrValues
        self.bootLog = bootLog
        self.imaLog = imaLog
        self.tlsKey = tlsKey
    }

    /// TPM structures are small (a P-256 key's public area ≈ 90 bytes, a quote ≈ 150).
    public static let maxStructure = 4096
    /// PCRs a TPM has (0 … 23).
    public static let pcrCount = 24

    func encode(into w: inout ByteWriter) {
        func structure(_ blob: [UInt8]) {
            w.write(UInt16(min(blob.count, Int(UInt16.max))))
            w.write(raw: blob.prefix(Int(UInt16.max)))
        }
        [attestationKey, quote, signature].forEach(structure)
        w.write(UInt8(min(pcrValues.count, Self.pcrCount)))
        for p in pcrValues.prefix(Self.pcrCount) {
            w.write(UInt8(truncatingIfNeeded: p.index))
            w.write(raw: p.value.bytes)
        }
        w.write(lengthPrefixed: bootLog)
        w.write(lengthPrefixed: imaLog)
        if let tlsKey {
            w.write(UInt8(1))
            [tlsKey.publicArea, tlsKey.certifyInfo, tlsKey.signature].forEach(structure)
        } else {
            w.write(UInt8(0))
        }
    }

    static func decode(from r: inout ByteReader, limits: WireLimits) throws -> PlatformEvidence {
        func structure(_ field: String) throws -> [UInt8] {
            let n = Int(try r.readUInt16(field))
            guard n <= maxStructure else { throw WireError.invalidValue(field: field, value: UInt64(n)) }
            return try r.readBytes(n, field)
        }
        let key = try structure("attest.platform.key")
        let quote = try structure("attest.platform.quote")
        let signature = try structure("attest.platform.signature")
        let count = Int(try r.readUInt8("attest.platform.pcrs"))
        guard count <= pcrCount else { throw WireError.invalidValue(field: "attest.platform.pcrs", value: UInt64(count)) }
        var values: [PCRValue] = []
        for _ in 0..<count {
            let index = Int(try r.readUInt8("attest.platform.pcr"))
            let previous = values.last?.index ?? -1
            guard (0..<pcrCount).contains(index), index > previous else {
                throw WireError.invalidValue(field: "attest.platform.pcr", value: UInt64(index))
            }
            values.append(PCRValue(index: index, value: try r.readDigest("attest.platform.pcrValue")))
        }
        let boot = try r.readLengthPrefixed("attest.platform.bootLog", limit: limits.maxBootLog)
        let ima = try r.readLengthPrefixed("attest.platform.imaLog", limit: limits.maxIMALog)
        var tlsKey: KeyCertification?
        switch try r.readUInt8("attest.platform.tlsKey") {
        case 0: break
        case 1:
            tlsKey = KeyCertification(publicArea: try structure("attest.platform.tlsKey.public"),
                                      certifyInfo: try structure("attest.platform.tlsKey.certifyInfo"),
                                      signature: try structure("attest.platform.tlsKey.signature"))
        case let other: throw WireError.invalidValue(field: "attest.platform.tlsKey", value: UInt64(other))
        }
        return PlatformEvidence(attestationKey: key, quote: quote, signature: signature, pcrValues: values, bootLog: boot, imaLog: ima,
                                tlsKey: tlsKey)
    }
}
