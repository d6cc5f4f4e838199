internal import CTSS2MU
import PalmCrypto
import PalmWire

/// Why bytes claiming to be a TPM structure were refused.
public enum TPMFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// tpm2-tss's unmarshalling refused the bytes (truncated, a bad tag, an impossible size).
    case malformed(structure: String, detail: String)
    /// Decoded, but bytes were left over after the structure.
    case trailingBytes(structure: String, count: Int)
    /// A well-formed structure palm does not accept (another algorithm, a missing attribute).
    case unsupported(structure: String, detail: String)

    public var description: String {
        switch self {
        case let .malformed(s, d): return "\(s) is malformed: \(d)"
        case let .trailingBytes(s, n): return "\(s) has \(n) trailing bytes"
        case let .unsupported(s, d): return "\(s) is not acceptable: \(d)"
        }
    }
}

/// TPM constants from the TPM 2.0 specification, part 2 (the headers define them as casted
/// macros, which Swift does not import).
enum TPMConstant {
    static let generatedValue: UInt32 = 0xFF54_4347
    static let attestQuote: UInt16 = 0x8018
    static let attestCertify: UInt16 = 0x8017
    static let algSHA256: UInt16 = 0x000B
    static let algECC: UInt16 = 0x0023
    static let algRSA: UInt16 = 0x0001
    static let algECDSA: UInt16 = 0x0018
    static let algNull: UInt16 = 0x0010
    static let eccNistP256: UInt16 = 0x0003
    static let objectFixedTPM: UInt32 = 0x0000_0002
    static let objectFixedParent: UInt32 = 0x0000_0010
    static let objectSensitiveDataOrigin: UInt32 = 0x0000_0020
    static let objectRestricted: UInt32 = 0x0001_0000
    static let objectDecrypt: UInt32 = 0x0002_0000
    static let objectSign: UInt32 = 0x0004_0000
}

/// Bytes out of a C fixed-size array (imported as a tuple): the first `count`, at most its size.
func tpmBytes<T>(_ tuple: T, count: Int) -> [UInt8] {
    withUnsafeBytes(of: tuple) { Array($0.prefix(max(0, count))) }
}

/// Runs a tpm2-tss unmarshaller over all of `bytes`; trailing bytes are refused.
func tpmUnmarshal<T>(_ structure: String, _ bytes: [UInt8], into value: inout T,
                     _ unmarshal: (UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<Int>, UnsafeMutablePointer<T>) -> UInt32) throws {
    var offset = 0
    let rc = bytes.withUnsafeBufferPointer { b in unmarshal(b.baseAddress, b.count, &offset, &value) }
    guard rc == 0 else { throw TPMFormatError.malformed(structure: structure, detail: String(format: "tpm2-tss code 0x%08x", rc)) }
    guard offset == bytes.count else { throw TPMFormatError.trailingBytes(structure: structure, count: bytes.count - offset) }
}

/// A TPMS_ATTEST the TPM generated (its magic) of the given type (quote, certification).
func tpmAttest(_ bytes: [UInt8], type: UInt16, what: String) throws -> TPMS_ATTEST {
    var a = TPMS_ATTEST()
    try tpmUnmarshal("TPMS_ATTEST", bytes, into: &a) { Tss2_MU_TPMS_ATTEST_Unmarshal($0, $1, $2, $3) }
    guard a.magic == TPMConstant.generatedValue else {
        throw TPMFormatError.unsupported(structure: "TPMS_ATTEST", detail: "magic is not TPM_GENERATED_VALUE")
    }
    guard a.type == type else {
        throw TPMFormatError.unsupported(structure: "TPMS_ATTEST", detail: String(format: "type 0x%04x", a.type) + " is not \(what)")
    }
    return a
}

/// A TPM2_Quote's attestation structure (TPMS_ATTEST, the bytes the AK signed), decoded by
/// tpm2-tss. Decoding guarantees the TPM's magic (a structure the TPM generated itself) and the
/// quote tag; everything else is for the verifier to check.
public struct TPMQuoteInfo: Sendable, Equatable {
    /// The signed bytes as received.
    public let bytes: [UInt8]
    /// The name of the key that signed (the AK's name).
    public let qualifiedSigner: [UInt8]
    /// The qualifying data the quote was asked for (palm: the session's binding digest).
    public let extraData: [UInt8]
    /// Milliseconds the TPM has been powered since its last reset.
    public let clock: UInt64
    /// TPM resets (reboots) and restarts (resumes) since the counters were last cleared.
    public let resetCount: UInt32
    public let restartCount: UInt32
    public let safe: Bool
    public let firmwareVersion: UInt64
    /// PCR indices selected in the SHA-256 bank (the only bank palm quotes).
    public let pcrs: [Int]
    /// SHA-256 over the selected PCRs' values, in index order.
    public let pcrDigest: [UInt8]

    public init(decoding bytes: [UInt8]) throws {
        let a = try tpmAttest(bytes, type: TPMConstant.attestQuote, what: "a quote")
        self.bytes = bytes
        qualifiedSigner = tpmBytes(a.qualifiedSigner.name, count: Int(a.qualifiedSigner.size))
        extraData = tpmBytes(a.extraData.buffer, count: Int(a.extraData.size))
        clock = a.clockInfo.clock
        resetCount = a.clockInfo.resetCount
        restartCount = a.clockInfo.restartCount
        safe = a.clockInfo.safe != 0
        firmwareVersion = a.firmwareVersion
        let selection = a.attested.quote.pcrSelect
        var pcrs: [Int] = []
        let count = min(Int(selection.count), 16)
        try withUnsafeBytes(of: selection.pcrSelections) { raw in
            let banks = raw.bindMemory(to: TPMS_PCR_SELECTION.self)
            for i in 0..<count {
                let bank = banks[i]
                let mask = tpmBytes(bank.pcrSelect, count: Int(bank.sizeofSelect))
                guard bank.hash == TPMConstant.algSHA256 else {
                    if mask.allSatisfy({ $0 == 0 }) { continue }
                    throw TPMFormatError.unsupported(structure: "TPMS_QUOTE_INFO", detail: String(format: "PCR bank 0x%04x (palm quotes SHA-256 only)", bank.hash))
                }
                for (byte, bits) in mask.enumerated() {
                    for bit in 0..<8 where bits & (1 << bit) != 0 { pcrs.append(byte * 8 + bit) }
                }
            }
        }
        self.pcrs = pcrs.sorted()
        let digest = a.attested.quote.pcrDigest
        pcrDigest = tpmBytes(digest.buffer, count: Int(digest.size))
    }
}

/// A TPM2_Certify's attestation structure (TPMS_ATTEST with TPMS_CERTIFY_INFO), decoded by
/// tpm2-tss: the TPM's magic and the certify tag are guaranteed; the rest is for the verifier.
public struct TPMCertifyInfo: Sendable, Equatable {
    /// The signed bytes as received.
    public let bytes: [UInt8]
    /// The qualifying data the certification was asked for.
    public let extraData: [UInt8]
    /// The certified object's name (nameAlg ‖ digest of its public area).
    public let name: [UInt8]

    public init(decoding bytes: [UInt8]) throws {
        let a = try tpmAttest(bytes, type: TPMConstant.attestCertify, what: "a certification")
        self.bytes = bytes
        extraData = tpmBytes(a.extraData.buffer, count: Int(a.extraData.size))
        name = tpmBytes(a.attested.certify.name.name, count: Int(a.attested.certify.name.size))
    }
}

/// An ECDSA signature made by a TPM (TPMT_SIGNATURE), as the DER form OpenSSL verifies.
public struct TPMSignature: Sendable, Equatable {
    public let der: [UInt8]

    public init(decoding bytes: [UInt8]) throws {
        var s = TPMT_SIGNATURE()
        try tpmUnmarshal("TPMT_SIGNATURE", bytes, into: &s) { Tss2_MU_TPMT_SIGNATURE_Unmarshal($0, $1, $2, $3) }
        guard s.sigAlg == TPMConstant.algECDSA, s.signature.ecdsa.hash == TPMConstant.algSHA256 else {
            throw TPMFormatError.unsupported(structure: "TPMT_SIGNATURE", detail: "not ECDSA with SHA-256")
        }
        let r = tpmBytes(s.signature.ecdsa.signatureR.buffer, count: Int(s.signature.ecdsa.signatureR.size))
        let sv = tpmBytes(s.signature.ecdsa.signatureS.buffer, count: Int(s.signature.ecdsa.signatureS.size))
        der = ECDSASignatureDER.encode(r: r, s: sv)
    }
}

/// The public area of a TPM key (TPMT_PUBLIC) and its TPM name (nameAlg ‖ SHA-256 of the area).
public struct TPMPublicArea: Sendable, Equatable {
    public enum Key: Sendable, Equatable {
        case ecc(curve: UInt16, x: [UInt8], y: [UInt8])
        case rsa(modulus: [UInt8], exponent: UInt32)
    }

    public let bytes: [UInt8]
    public let name: [UInt8]
    public let attributes: UInt32
    public let key: Key
    /// For a signing key: its scheme (ECDSA) and hash (SHA-256); nil for a key without one.
    public let signingScheme: (scheme: UInt16, hash: UInt16)?

    public static func == (a: TPMPublicArea, b: TPMPublicArea) -> Bool { a.bytes == b.bytes }

    public init(decoding bytes: [UInt8]) throws {
        var p = TPMT_PUBLIC()
        try tpmUnmarshal("TPMT_PUBLIC", bytes, into: &p) { Tss2_MU_TPMT_PUBLIC_Unmarshal($0, $1, $2, $3) }
        guard p.nameAlg == TPMConstant.algSHA256 else {
            throw TPMFormatError.unsupported(structure: "TPMT_PUBLIC", detail: "name algorithm is not SHA-256")
        }
        self.bytes = bytes
        name = [0x00, 0x0B] + SHA256.hash(bytes).bytes
        attributes = p.objectAttributes
        switch p.type {
        case TPMConstant.algECC:
            let e = p.parameters.eccDetail
            key = .ecc(curve: e.curveID, x: tpmBytes(p.unique.ecc.x.buffer, count: Int(p.unique.ecc.x.size)),
                       y: tpmBytes(p.unique.ecc.y.buffer, count: Int(p.unique.ecc.y.size)))
            signingScheme = e.scheme.scheme == TPMConstant.algNull ? nil : (e.scheme.scheme, e.scheme.details.ecdsa.hashAlg)
        case TPMConstant.algRSA:
            let r = p.parameters.rsaDetail
            key = .rsa(modulus: tpmBytes(p.unique.rsa.buffer, count: Int(p.unique.rsa.size)), exponent: r.exponent == 0 ? 65537 : r.exponent)
            signingScheme = nil
        default:
            throw TPMFormatError.unsupported(structure: "TPMT_PUBLIC", detail: String(format: "key type 0x%04x", p.type))
        }
    }

    /// True when every bit of `mask` is set.
    public func has(_ mask: UInt32) -> Bool { attributes & mask == mask }
}
