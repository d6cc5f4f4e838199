import PalmTLS

/// The pre-authentication keys of a server's `[listen]` table (palm-dest, palm-coordinator).
extension AdmissionGate.Limits {
    public static func load(_ file: ConfigFile) throws -> AdmissionGate.Limits {
        var l = AdmissionGate.Limits()
        l.maxPending = try file.int("listen.max_pending", default: l.maxPending, range: 1...65_536)
        l.maxHandshakes = try file.int("listen.max_handshakes", default: l.maxHandshakes, range: 1...4096)
        l.maxPerAddress = try file.int("listen.max_handshakes_per_address", default: l.maxPerAddress, range: 1...4096)
        l.earlyDropStart = try file.int("listen.early_drop_start", default: l.earlyDropStart, range: 1...4096)
        l.preAuthTimeout = try file.double("listen.preauth_timeout_s", default: l.preAuthTimeout, range: 0.1...300)
        guard l.earlyDropStart <= l.maxHandshakes else {
            throw ConfigError.invalidValue(file: file.path, key: "listen.early_drop_start",
                                           reason: "\(l.earlyDropStart) is above listen.max_handshakes (\(l.maxHandshakes))")
        }
        return l
    }
}
