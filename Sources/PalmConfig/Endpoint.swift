/// HOST[:PORT] as palm's configurations and command lines write it (IPv6 in brackets: `[::1]:7410`).
/// The one parser for addresses: agents, the coordinator and the CLIs all use it.
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `text`; without a port it takes `defaultPort`, or fails when there is none. Port 0
    /// ("any free port") only with `allowsAnyPort`.
    public init?(_ text: String, defaultPort: UInt16? = nil, allowsAnyPort: Bool = false) {
        var host = text
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { return nil }
            host = String(parts[0])
            if parts.count == 2 { portText = parts[1] }
        }
        guard !host.isEmpty else { return nil }
        if let portText {
            guard let p = UInt16(portText), p > 0 || allowsAnyPort else { return nil }
            port = p
        } else {
            guard let defaultPort else { return nil }
            port = defaultPort
        }
        self.host = host
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
