import PalmWire

/// How a source compresses MEMORY batches: never, always with one codec, or `auto` — lz4 on the
/// streams where a trial measures it cheaper than sending raw (``AdaptiveCompression``).
///
/// The wire knows codecs only: CONFIG announces ``codec`` and each batch says whether it is raw or
/// compressed, so `auto` needs nothing from the destination beyond what `lz4` does.
public enum CompressionSetting: Equatable, Sendable, CustomStringConvertible {
    case off
    case always(PageCompression)
    case auto

    /// The names configuration files and the CLI use.
    public static let names = ["auto", "none", "lz4", "zstd"]

    public init?(name: String) {
        switch name {
        case "auto": self = .auto
        case "none": self = .off
        default:
            guard let codec = PageCompression(name: name), codec != .none else { return nil }
            self = .always(codec)
        }
    }

    /// The codec CONFIG announces (batches may still travel raw).
    public var codec: PageCompression {
        switch self {
        case .off: return .none
        case let .always(codec): return codec
        case .auto: return .lz4
        }
    }

    public var description: String {
        switch self {
        case .off: return "none"
        case let .always(codec): return codec.description
        case .auto: return "auto"
        }
    }
}
