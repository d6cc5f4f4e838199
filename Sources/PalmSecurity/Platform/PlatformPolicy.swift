import Foundation
import PalmWire

/// What a source (and the coordinator's continuous attestation) accepts of a destination's
/// platform: the PCRs its quote must cover, the boot components allowed by digest (from the
/// measured-boot event log, so a kernel update is a policy edit, not a new golden PCR value),
/// the files IMA may have measured, and the palm-dest binaries allowed.
///
/// Deny by default: an empty policy allows no boot component and no file, so only a platform
/// that measured nothing passes it. ``learning(boot:ima:agents:)`` builds one from a host an operator
/// declares good; ``violations(boot:ima:agentDigest:)`` says what a host ran that it does not allow.
public struct PlatformPolicy: Codable, Sendable, Equatable {
    /// One allowed boot component: a measured-boot event's SHA-256 for its PCR. `type` and `what`
    /// (the event's text, where it has any) are for reading; only (pcr, digest) decides.
    public struct BootComponent: Codable, Sendable, Hashable {
        public var pcr: Int
        public var digest: String
        public var type: String
        public var what: String

        public init(pcr: Int, digest: String, type: String = "", what: String = "") {
            self.pcr = pcr
            self.digest = digest.lowercased()
            self.type = type
            self.what = what
        }
    }

    /// One allowed file: its digest as IMA logs it (`sha256:HEX`) and where it was seen.
    public struct File: Codable, Sendable, Hashable {
        public var digest: String
        public var path: String

        public init(digest: String, path: String) {
            self.digest = digest.lowercased()
            self.path = path
        }
    }

    /// PCRs every quote must cover (SHA-256 bank): by default the boot PCRs 0–9 and IMA's 10.
    public var pcrs: [Int]
    public var boot: [BootComponent]
    public var files: [File]
    /// Path prefixes whose files are not checked (e.g. a directory of logs IMA measures).
    public var excludes: [String]
    /// SHA-256 (hex) of the palm-dest executables allowed; the running one must also appear in
    /// the IMA log (measured by the kernel, not only reported by the agent).
    public var agents: [String]
    /// Accept IMA measurement violations (a file changed while it was open for writing); off by
    /// default: a violation means a measured digest may not be what ran.
    public var allowViolations: Bool

    public static let defaultPCRs = Array(0...10)
    /// IMA's PCR.
    public static let imaPCR = 10

    public init(pcrs: [Int] = PlatformPolicy.defaultPCRs, boot: [BootComponent] = [], files: [File] = [], excludes: [String] = [],
                agents: [String] = [], allowViolations: Bool = false) {
        self.pcrs = pcrs.sorted()
        self.boot = boot
        self.files = files
        self.excludes = excludes
        self.agents = agents.map { $0.lowercased() }
        self.allowViolations = allowViolations
    }

    /// A file digest as a lookup key: hashed as one block of bytes, not byte by byte.
    struct FileKey: Hashable {
        let algorithm: String
        let digest: [UInt8]
        func hash(into h: inout Hasher) {
            h.combine(algorithm)
            digest.withUnsafeBytes { h.combine(bytes: $0) }
        }
    }

    /// The policy as sets to look entries up in: built once per policy (a verifier that checks
    /// many logs against one policy keeps it), not per entry or per log.
    public struct Index: Sendable {
        let boot: Set<String>
        let files: Set<FileKey>
        let agents: Set<String>
        let excludes: [String]

        public init(_ p: PlatformPolicy) {
            boot = Set(p.boot.map { "\($0.pcr):\($0.digest)" })
            files = Set(p.files.compactMap { f -> FileKey? in
                let parts = f.digest.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let digest = Hex.decode(String(parts[1])) else { return nil }
                return FileKey(algorithm: String(parts[0]), digest: digest)
            })
            agents = Set(p.agents)
            excludes = p.excludes.filter { !$0.isEmpty }
        }

        func allowsBoot(_ e: BootEventLog.Event) -> Bool { boot.contains("\(e.pcr):\(e.sha256.hex)") }
        func allowsFile(_ e: IMALog.Entry) -> Bool {
            files.contains(FileKey(algorithm: e.fileAlgorithm, digest: e.fileDigest)) || (!excludes.isEmpty && excludes.contains { e.path.hasPrefix($0) })
        }
    }

    public var index: Index { Index(self) }

    /// One thing a platform did that this policy does not allow.
    public enum Violation: Sendable, Equatable, CustomStringConvertible {
        case bootComponent(pcr: Int, type: String, digest: String, what: String)
        case file(path: String, digest: String)
        case measurementViolation(path: String)
        case agentNotAllowed(digest: String)
        case agentNotMeasured(digest: String)

        public var description: String {
            switch self {
            case let .bootComponent(pcr, type, digest, what):
                return "boot component not allowed: PCR \(pcr) \(type) sha256:\(digest)" + (what.isEmpty ? "" : " (\(what))")
            case let .file(path, digest): return "file not allowed: \(path) \(digest)"
            case let .measurementViolation(path): return "IMA measurement violation on \(path)"
            case let .agentNotAllowed(d): return "palm-dest sha256:\(d) is not an allowed agent"
            case let .agentNotMeasured(d): return "palm-dest sha256:\(d) was not measured by IMA (the kernel never saw it run)"
            }
        }
    }

    /// Everything in `boot` and `ima` (already verified against a quote) and the agent's
    /// reported digest that this policy does not allow, in log order. Empty: the platform passes.
    public func violations(boot: BootEventLog, ima: ArraySlice<IMALog.Entry>, agentDigest: String?, limit: Int = 100,
                           index: Index? = nil) -> [Violation] {
        let allowed = index ?? self.index
        var found: [Violation] = []
        let bootPCRs = Set(pcrs.filter { $0 != Self.imaPCR })
        for e in boot.events where bootPCRs.contains(e.pcr) && !allowed.allowsBoot(e) {
            found.append(.bootComponent(pcr: e.pcr, type: e.typeName, digest: e.sha256.hex, what: e.summary))
            if found.count >= limit { return found }
        }
        var agentMeasured = false
        let agentBytes = agentDigest.flatMap(Hex.decode)
        for e in ima {
            if e.isViolation {
                if !allowViolations { found.append(.measurementViolation(path: e.path)) }
            } else if e.path == "boot_aggregate" {
                continue  // checked against the quoted boot PCRs by the verifier
            } else if !allowed.allowsFile(e) {
                found.append(.file(path: e.path, digest: e.fileDigestText))
            }
            if let agentBytes, e.fileDigest == agentBytes, e.fileAlgorithm == "sha256" { agentMeasured = true }
            if found.count >= limit { return found }
        }
        if let agentDigest {
            if !allowed.agents.contains(agentDigest) { found.append(.agentNotAllowed(digest: agentDigest)) }
            if !agentMeasured { found.append(.agentNotMeasured(digest: agentDigest)) }
        }
        return found
    }

    /// A policy that allows exactly what `boot` and `ima` show (a host an operator declares
    /// good), plus the agent digests given; merged into `self` (nothing already allowed is lost).
    public func learning(boot: BootEventLog, ima: ArraySlice<IMALog.Entry>, agents more: [String] = []) -> PlatformPolicy {
        var next = self
        let bootPCRs = Set(pcrs.filter { $0 != Self.imaPCR })
        var seenBoot = Set(self.boot.map { "\($0.pcr):\($0.digest)" })
        for e in boot.events where bootPCRs.contains(e.pcr) && !seenBoot.contains("\(e.pcr):\(e.sha256.hex)") {
            seenBoot.insert("\(e.pcr):\(e.sha256.hex)")
            next.boot.append(BootComponent(pcr: e.pcr, digest: e.sha256.hex, type: e.typeName, what: e.summary))
        }
        var seenFiles = Set(files.map(\.digest))
        for e in ima where !e.isViolation && e.path != "boot_aggregate" && !seenFiles.contains(e.fileDigestText.lowercased()) {
            seenFiles.insert(e.fileDigestText.lowercased())
            next.files.append(File(digest: e.fileDigestText, path: e.path))
        }
        for a in more.map({ $0.lowercased() }) where !next.agents.contains(a) { next.agents.append(a) }
        return next
    }
}

extension PlatformPolicy {
    /// The policy as a source's `attestation.platform_policy` file holds it (what `palm-coordinator
    /// attestation policy show --json` prints and `palm-dest measure --platform-policy` writes).
    public func fileText() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }
}
