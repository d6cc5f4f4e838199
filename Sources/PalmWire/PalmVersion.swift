/// The release of palm this build belongs to, printed by every executable's `--version`.
public enum PalmVersion {
    public static let string = "0.1.0"
}
