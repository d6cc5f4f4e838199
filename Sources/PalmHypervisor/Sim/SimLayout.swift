/// The `sim` hypervisor's VM image: one file (on tmpfs, like RAM) shared by the guest process and
/// the agents.
///
/// ```text
///   offset 0                      header page: 64-bit slots (SimSlot), the VM's "CPU state"
///   offset pageSize               dirty bitmap: one bit per page, rounded up to whole pages
///   offset pageSize + bitmapBytes RAM: pageCount pages
/// ```
/// The header page is what STATE carries; RAM pages are what MEMORY carries.
public struct SimLayout: Equatable, Sendable {
    public static let magic: UInt64 = 0x314D_4953_4D4C_4150  // "PALMSIM1" little-endian
    public static let version: UInt64 = 1
    public static let pageSize = 4096

    public let pageCount: UInt64

    public init(pageCount: UInt64) { self.pageCount = pageCount }

    public var bitmapWords: Int { Int((pageCount + 63) / 64) }
    public var bitmapBytes: Int { (bitmapWords * 8 + SimLayout.pageSize - 1) / SimLayout.pageSize * SimLayout.pageSize }
    public var bitmapOffset: Int { SimLayout.pageSize }
    public var ramOffset: Int { SimLayout.pageSize + bitmapBytes }
    public var fileSize: Int { ramOffset + Int(pageCount) * SimLayout.pageSize }
}

/// Slots of the header page (index × 8 bytes). Slots up to `stateEnd` are the guest's CPU-like
/// state and travel in STATE; the name lives at byte `nameOffset`.
public enum SimSlot: Int, CaseIterable {
    case magic = 0, version, pageCount, pageSize, vcpus
    /// Workload: pages/s, working-set pages, pattern (SimPattern raw value), hot-set percent.
    case rate, workingSet, pattern, hotPercent
    /// Registers: PRNG state and sequential cursor.
    case rng, cursor
    /// Committed writes and the accumulators the self-check verifies: Σ generation, Σ mix(pfn, gen).
    case writes, genSum, genHash
    /// Write-ahead intent (see SimGuestCore): seq, pfn, new generation, new Σgen, new Σmix.
    case intentSeq, intentPfn, intentGen, intentSum, intentHash
    /// Self-check bookkeeping: requests (bumped on every resume), completed checks, failures,
    /// bad pages found by the last check, resumes so far (hosts visited).
    case verifyRequest, verifyDone, verifyFailures, lastBadPages, resumes
    /// The process running this VM (0: none). Not part of the migrated state.
    case guestPID
    case createdMillis
    /// How memory was filled (SimFill raw value); a realistic guest keeps its text pages text.
    case fill

    public var offset: Int { rawValue * 8 }
    public static let nameOffset = 1024
    public static let nameLimit = 255
}

/// Where the workload writes.
public enum SimPattern: UInt64, Sendable, CaseIterable {
    /// Uniformly random pages of the working set.
    case uniform = 0
    /// hotPercent % of writes to the working set, the rest anywhere in RAM.
    case hotSet = 1
    /// A cursor sweeping the working set.
    case sequential = 2

    public init?(name: String) {
        switch name {
        case "uniform": self = .uniform
        case "hot-set", "hotset", "hot": self = .hotSet
        case "sequential", "seq": self = .sequential
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .uniform: return "uniform"
        case .hotSet: return "hot-set"
        case .sequential: return "sequential"
        }
    }
}

/// What a sim guest's memory holds at creation.
public enum SimFill: UInt64, Sendable, CaseIterable {
    /// Every page random-looking (incompressible).
    case random = 0
    /// Every page zero (never written).
    case zero = 1
    /// A mix like a real guest's: about 30 % zero pages, 40 % text-like, 30 % random.
    case realistic = 2

    public init?(name: String) {
        switch name {
        case "random": self = .random
        case "zero": self = .zero
        case "realistic": self = .realistic
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .random: return "random"
        case .zero: return "zero"
        case .realistic: return "realistic"
        }
    }

    enum PageClass { case zero, text, random }

    /// What page `pfn` holds in a guest of this fill (a fixed property of the page).
    func pageClass(_ pfn: UInt64) -> PageClass {
        switch self {
        case .random: return .random
        case .zero: return .zero
        case .realistic:
            let r = SimPageContent.mix(pfn, 0x5EED) % 100
            return r < 30 ? .zero : r < 70 ? .text : .random
        }
    }
}
