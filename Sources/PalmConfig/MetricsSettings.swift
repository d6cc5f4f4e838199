import PalmTLS

/// `[metrics] listen = "IP:PORT"`: where a daemon serves `GET /metrics` for Prometheus. Off unless
/// configured; the same key in source.toml, dest.toml and coordinator.toml.
public enum MetricsSettings {
    /// The configured address, or nil when metrics are off. Anything but an IPv4 or IPv6 literal
    /// with a port (0: any free port) is a named ``ConfigError/invalidValue(file:key:reason:)``.
    public static func listen(_ f: ConfigFile) throws -> Endpoint? {
        guard let text = try f.optionalString("metrics.listen") else { return nil }
        guard let e = Endpoint(text, allowsAnyPort: true), TLSChannel.isIPAddress(e.host) else {
            throw ConfigError.invalidValue(file: f.path, key: "metrics.listen",
                                           reason: "'\(text)' is not IP:PORT (e.g. \"127.0.0.1:9464\" or \"[::1]:9464\")")
        }
        return e
    }
}
