import PalmCrypto
import PalmWire

/// The kernel's integrity measurement log (`/sys/kernel/security/ima/binary_runtime_measurements`):
/// one entry per file measured since boot, each extended into PCR 10.
///
/// ```text
///   entry: pcr u32 | template digest sha1[20] | name length u32 | template name |
///          data length u32 | template data
///   template data (ima-ng, ima-sig): fields, each length u32 | bytes:
///          digest field = "<algorithm>:\0" ‖ file digest;  path field = path ‖ "\0";
///          (ima-sig) signature field
///   all little-endian (the kernel's canonical format on x86)
/// ```
/// The SHA-256 bank is extended with SHA-256 of the template data, or with 32 bytes of 0xFF for
/// an entry whose SHA-1 template digest is zero (a measurement violation). Only the `ima-ng` and
/// `ima-sig` templates are accepted (the legacy `ima` template has only SHA-1 file digests).
public struct IMALog: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var pcr: Int
        /// The template's SHA-1 digest as logged (all zero: a violation).
        public var templateSHA1: [UInt8]
        public var template: String
        public var templateData: [UInt8]
        /// The measured file's digest algorithm and digest, and its path.
        public var fileAlgorithm: String
        public var fileDigest: [UInt8]
        public var path: String

        /// A measurement violation (a file changed while open for write, …): it extends PCR 10 with
        /// 0xFF…FF and measures nothing.
        public var isViolation: Bool { templateSHA1.allSatisfy { $0 == 0 } }

        /// What this entry extends the SHA-256 bank with.
        public var sha256Extension: Digest32 { sha256Extension(PageHasher()) }

        /// The same with a hasher the caller reuses (a log of ten thousand entries is replayed at
        /// every quote; OpenSSL's per-digest set-up would cost more than the hashing).
        public func sha256Extension(_ hasher: PageHasher) -> Digest32 {
            if isViolation { return IMALog.violationExtension }
            return templateData.withUnsafeBytes { hasher.hash($0) }
        }

        /// The file's digest as `sha256:HEX` (the form policies use).
        public var fileDigestText: String { "\(fileAlgorithm):\(Hex.encode(fileDigest))" }


        /// An `ima-ng` entry for a file with this SHA-256 digest (what tests and the rig build).
        public init(path: String, sha256 file: Digest32, pcr: Int = 10) {
            let digestField = Array("sha256:\0".utf8) + file.bytes
            let pathField = Array(path.utf8) + [0]
            templateData = IMALog.le32(UInt32(digestField.count)) + digestField + IMALog.le32(UInt32(pathField.count)) + pathField
            templateSHA1 = Array(SHA1.hash(templateData))
            template = "ima-ng"
            fileAlgorithm = "sha256"
            fileDigest = file.bytes
            self.path = path
            self.pcr = pcr
        }

        init(pcr: Int, templateSHA1: [UInt8], template: String, templateData: [UInt8], fileAlgorithm: String, fileDigest: [UInt8],
             path: String) {
            self.pcr = pcr
            self.templateSHA1 = templateSHA1
            self.template = template
            self.templateData = templateData
            self.fileAlgorithm = fileAlgorithm
            self.fileDigest = fileDigest
            self.path = path
        }
    }

    public let entries: [Entry]
    /// The templates palm reads and the digest algorithms IMA uses, shared instead of allocated per entry.
    static let templates = ["ima-ng", "ima-sig"]
    static let algorithms = ["sha256", "sha1", "sha384", "sha512"]
    static let violationExtension = Digest32([UInt8](repeating: 0xFF, count: 32)) ?? .zero
    /// Entries one log may hold (a long-running host measures tens of thousands of files).
    public static let maxEntries = 200_000

    public init(entries: [Entry]) { self.entries = entries }

    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    public init(decoding bytes: [UInt8]) throws {
        let name = "IMA log"
        var r = LogReader(bytes, log: name)
        var entries: [Entry] = []
        while !r.atEnd {
            guard entries.count < Self.maxEntries else { throw PlatformLogError.tooManyEntries(log: name, limit: Self.maxEntries) }
            let at = r.offset
            let pcr = Int(try r.u32("pcr"))
            guard pcr < PlatformEvidence.pcrCount else { throw PlatformLogError.invalid(log: name, field: "pcr", offset: at, detail: "\(pcr)") }
            let sha1 = try r.bytes(20, "template digest")
            let nameLength = Int(try r.u32("template name length"))
            guard (1...255).contains(nameLength) else {
                throw PlatformLogError.invalid(log: name, field: "template name length", offset: at, detail: "\(nameLength)")
            }
            let nameBytes = try r.slice(nameLength, "template name")
            guard let template = Self.templates.first(where: { $0.utf8.elementsEqual(nameBytes) }) else {
                throw PlatformLogError.invalid(log: name, field: "template", offset: at,
                                               detail: "'\(String(decoding: nameBytes, as: UTF8.self))' (palm reads ima-ng and ima-sig)")
            }
            let dataLength = Int(try r.u32("template data length"))
            let data = try r.slice(dataLength, "template data")
            // The template's first two fields, inside `data`: "ALGORITHM:\0" ‖ digest, then the path.
            var fields = LogReader(bytes, log: name)
            fields.skip(to: data.startIndex)
            let digestField = try fields.slice(Int(try fields.u32("digest field length")), "digest field")
            let pathField = try fields.slice(Int(try fields.u32("path field length")), "path field")
            guard fields.offset <= data.endIndex, let colon = digestField.firstIndex(of: 0x3A), colon + 1 < digestField.endIndex,
                  digestField[colon + 1] == 0 else {
                throw PlatformLogError.invalid(log: name, field: "digest field", offset: at, detail: "not ALGORITHM:\\0DIGEST")
            }
            let algorithmBytes = digestField[..<colon]
            let algorithm = Self.algorithms.first { $0.utf8.elementsEqual(algorithmBytes) } ?? String(decoding: algorithmBytes, as: UTF8.self)
            let digest = Array(digestField[(colon + 2)...])
            let path = String(decoding: pathField.prefix { $0 != 0 }, as: UTF8.self)
            entries.append(Entry(pcr: pcr, templateSHA1: sha1, template: template, templateData: Array(data), fileAlgorithm: algorithm,
                                 fileDigest: digest, path: path))
        }
        self.entries = entries
    }

    /// The binary form the kernel writes (what tests and the rig build).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for e in entries {
            out += Self.le32(UInt32(e.pcr)) + e.templateSHA1 + Self.le32(UInt32(e.template.utf8.count)) + Array(e.template.utf8)
                + Self.le32(UInt32(e.templateData.count)) + e.templateData
        }
        return out
    }

    /// The shortest prefix of the log that replays PCR `pcr` to `quoted`: entries after it were
    /// measured after the quote (the kernel keeps extending while the log is read) and are not
    /// covered by it. Nil when no prefix replays to the value: the log is not the one that
    /// produced the quoted PCR.
    public func verifiedPrefix(replaying quoted: Digest32, pcr: Int = 10) -> ArraySlice<Entry>? {
        var value = Digest32.zero
        if value == quoted { return entries[0..<0] }
        let hasher = PageHasher()
        for (i, e) in entries.enumerated() where e.pcr == pcr {
            value = IMALog.extend(value, with: e.sha256Extension(hasher), hasher)
            if value == quoted { return entries[0...i] }
        }
        return nil
    }

    /// SHA-256(pcr ‖ measurement) with a reused hasher.
    static func extend(_ pcr: Digest32, with measurement: Digest32, _ hasher: PageHasher) -> Digest32 {
        var both = [UInt8](repeating: 0, count: 64)
        both.withUnsafeMutableBufferPointer { b in
            for i in 0..<32 { b[i] = pcr.bytes[i]; b[32 + i] = measurement.bytes[i] }
        }
        return both.withUnsafeBytes { hasher.hash($0) }
    }
}
