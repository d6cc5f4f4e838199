internal import CTSS2ESys
internal import CTSS2Shims
import PalmCrypto
import PalmSecurity
import PalmWire

/// A quote as the TPM made it, with the PCR values it covers.
public struct TPMQuote: Sendable, Equatable {
    /// TPMT_PUBLIC of the attestation key that signed.
    public var attestationKey: [UInt8]
    /// TPMS_ATTEST (the signed bytes) and TPMT_SIGNATURE.
    public var quote: [UInt8]
    public var signature: [UInt8]
    public var pcrValues: [PlatformEvidence.PCRValue]
}

extension TPMDevice {
    /// Quotes `pcrs` (SHA-256 bank) with the attestation key over `qualifyingData` (≤ 64 bytes),
    /// and reads the PCRs' values. The kernel may extend a PCR (IMA) between the quote and the
    /// read: the values are read again, and the whole quote retried, until they match the quote's
    /// digest (at most `attempts` times).
    public func quote(pcrs: [Int], qualifyingData: [UInt8], attempts: Int = 5) throws -> TPMQuote {
        guard qualifyingData.count <= 64 else { throw TPMError.unexpected("qualifying data longer than 64 bytes") }
        let mask = pcrs.reduce(UInt32(0)) { $0 | (($1 >= 0 && $1 < 24) ? 1 << UInt32($1) : 0) }
        return try run("quote") { [self] ctx in
            let (ak, area) = try createAttestationKey(ctx)
            defer { flush(ctx, ak) }
            for _ in 0..<max(1, attempts) {
                var data = TPM2B_DATA()
                data.size = UInt16(TPMBytes.write(qualifyingData, into: &data.buffer))
                var scheme = TPMT_SIG_SCHEME()
                scheme.scheme = 0x0010  // TPM2_ALG_NULL: the key's own scheme (ECDSA, SHA-256)
                var selection = TPML_PCR_SELECTION()
                palm_tpm_pcr_selection_sha256(mask, &selection)
                var quoted: UnsafeMutablePointer<TPM2B_ATTEST>?
                var signature: UnsafeMutablePointer<TPMT_SIGNATURE>?
                try check(Esys_Quote(ctx, ak, palm_esys_tr_password(), palm_esys_tr_none(), palm_esys_tr_none(), &data, &scheme, &selection,
                                     &quoted, &signature), "Quote")
                defer {
                    Esys_Free(quoted)
                    Esys_Free(signature)
                }
                guard let quoted, let signature else { throw TPMError.unexpected("Quote returned nothing") }
                let attest = TPMBytes.read(quoted.pointee.attestationData, count: Int(quoted.pointee.size))
                let sig = try TPMBytes.marshal(signature.pointee) { Tss2_MU_TPMT_SIGNATURE_Marshal($0, $1, $2, $3) }
                let values = try readPCRs(ctx, mask: mask)
                let info = try TPMQuoteInfo(decoding: attest)
                if SHA256.hash(values.flatMap(\.value.bytes)).bytes == info.pcrDigest {
                    return TPMQuote(attestationKey: area, quote: attest, signature: sig, pcrValues: values)
                }
            }
            throw TPMError.unexpected("the PCRs kept changing between the quote and their read (\(attempts) attempts)")
        }
    }

    /// The SHA-256 bank's values of the PCRs in `mask`, in index order.
    public func readPCRs(_ pcrs: [Int]) throws -> [PlatformEvidence.PCRValue] {
        let mask = pcrs.reduce(UInt32(0)) { $0 | (($1 >= 0 && $1 < 24) ? 1 << UInt32($1) : 0) }
        return try run("PCR_Read") { [self] ctx in try readPCRs(ctx, mask: mask) }
    }

    func readPCRs(_ ctx: OpaquePointer, mask: UInt32) throws -> [PlatformEvidence.PCRValue] {
        var values: [PlatformEvidence.PCRValue] = []
        var left = mask
        while left != 0 {
            var selection = TPML_PCR_SELECTION()
            palm_tpm_pcr_selection_sha256(left, &selection)
            var counter: UInt32 = 0
            var out: UnsafeMutablePointer<TPML_PCR_SELECTION>?
            var digests: UnsafeMutablePointer<TPML_DIGEST>?
            try check(Esys_PCR_Read(ctx, palm_esys_tr_none(), palm_esys_tr_none(), palm_esys_tr_none(), &selection, &counter, &out, &digests),
                      "PCR_Read")
            defer {
                Esys_Free(out)
                Esys_Free(digests)
            }
            guard let out, let digests, out.pointee.count >= 1 else { throw TPMError.unexpected("PCR_Read returned no selection") }
            // The TPM answers as many PCRs as fit (8); the ones it answered are in its selection.
            let answered = TPMBytes.read(out.pointee.pcrSelections.0.pcrSelect, count: Int(out.pointee.pcrSelections.0.sizeofSelect))
            var read = UInt32(0)
            for (byte, bits) in answered.enumerated() {
                for bit in 0..<8 where bits & (1 << bit) != 0 { read |= 1 << UInt32(byte * 8 + bit) }
            }
            guard read != 0, read & ~left == 0 else { throw TPMError.unexpected("PCR_Read answered PCRs that were not asked for") }
            let list = withUnsafeBytes(of: digests.pointee.digests) { raw in Array(raw.bindMemory(to: TPM2B_DIGEST.self).prefix(Int(digests.pointee.count))) }
            let indices = (0..<24).filter { read & (1 << UInt32($0)) != 0 }
            guard list.count == indices.count else { throw TPMError.unexpected("PCR_Read returned \(list.count) values for \(indices.count) PCRs") }
            for (index, d) in zip(indices, list) {
                guard let value = Digest32(TPMBytes.read(d.buffer, count: Int(d.size))) else { throw TPMError.unexpected("a PCR value is not 32 bytes") }
                values.append(.init(index: index, value: value))
            }
            left &= ~read
        }
        return values.sorted { $0.index < $1.index }
    }

    /// Extends PCR `index` (SHA-256 bank) with `digest`: what measured boot and IMA do, used by
    /// tests and the rig to make a software TPM's PCRs match the logs they build.
    public func extend(pcr index: Int, with digest: Digest32) throws {
        guard (0..<24).contains(index) else { throw TPMError.unexpected("no PCR \(index)") }
        try run("PCR_Extend") { [self] ctx in
            var values = TPML_DIGEST_VALUES()
            values.count = 1
            values.digests.0.hashAlg = 0x000B
            TPMBytes.write(digest.bytes, into: &values.digests.0.digest)
            try check(Esys_PCR_Extend(ctx, ESYS_TR(index), palm_esys_tr_password(), palm_esys_tr_none(), palm_esys_tr_none(), &values), "PCR_Extend")
        }
    }
}

extension TPMDevice {
    /// Extends PCR `index` with each of `digests` in order, in one operation (a benchmark or a rig
    /// replaying a long measurement log).
    public func extend(pcr index: Int, withEach digests: [Digest32]) throws {
        guard (0..<24).contains(index) else { throw TPMError.unexpected("no PCR \(index)") }
        try run("PCR_Extend") { [self] ctx in
            for digest in digests {
                var values = TPML_DIGEST_VALUES()
                values.count = 1
                values.digests.0.hashAlg = 0x000B
                TPMBytes.write(digest.bytes, into: &values.digests.0.digest)
                try check(Esys_PCR_Extend(ctx, ESYS_TR(index), palm_esys_tr_password(), palm_esys_tr_none(), palm_esys_tr_none(), &values),
                          "PCR_Extend")
            }
        }
    }
}
