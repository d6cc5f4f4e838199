import PalmHypervisor
import Foundation

/// The parts of a Xen host palm leaves to Xen's own toolstack, `xl` (libxl): reading a domain's
/// configuration, renaming, destroying (xenstore, console and backends cleaned up as libxl does),
/// and rebuilding an incoming domain from a migration stream (`xl restore`).
struct XenToolstack: Sendable {
    /// The `xl` executable (searched in PATH when not absolute).
    var xl: String = "xl"
    var timeout: Double = 120

    /// The domain's libxl configuration as JSON (`xl list -l`), the form `xl restore` reads.
    func configJSON(domid: UInt32) throws -> [UInt8] {
        let text = try ToolProcess.run([xl, "list", "-l", "\(domid)"], timeout: timeout)
        guard let data = text.data(using: .utf8),
              let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]],
              let entry = list.first(where: { ($0["domid"] as? Int).map { UInt32($0) == domid } ?? false }) ?? list.first,
              let config = entry["config"],
              let json = try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]) else {
            throw HypervisorError.guestFailed("`xl list -l \(domid)` did not print a domain configuration")
        }
        return Array(json)
    }

    /// `c_info.type` of a configuration ("pvh", "hvm", "pv").
    static func guestType(_ configJSON: [UInt8]) -> String? {
        guard let o = try? JSONSerialization.jsonObject(with: Data(configJSON)) as? [String: Any],
              let cInfo = o["c_info"] as? [String: Any] else { return nil }
        return cInfo["type"] as? String
    }

    /// The configuration with `c_info.name` replaced (the destination restores under a temporary name).
    static func renamed(_ configJSON: [UInt8], to name: String) throws -> [UInt8] {
        guard var o = try? JSONSerialization.jsonObject(with: Data(configJSON)) as? [String: Any],
              var cInfo = o["c_info"] as? [String: Any] else {
            throw HypervisorError.corruptImage("the domain configuration is not libxl JSON with a c_info section")
        }
        cInfo["name"] = name
        o["c_info"] = cInfo
        guard let data = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) else {
            throw HypervisorError.corruptImage("the domain configuration cannot be re-encoded")
        }
        return Array(data)
    }

    func rename(domid: UInt32, to name: String) throws {
        try ToolProcess.run([xl, "rename", "\(domid)", name], timeout: timeout)
    }

    func destroy(domid: UInt32) throws {
        try ToolProcess.run([xl, "destroy", "\(domid)"], timeout: timeout)
    }

    /// Starts `xl restore -p` reading the stream from `fd` (its fd 3, named /proc/self/fd/3: a
    /// minimal dom0 need not have the /dev/fd symlink); the domain it creates stays paused until
    /// palm unpauses it after COMMIT.
    func startRestore(readingFrom fd: Int32) throws -> ToolProcess {
        try ToolProcess([xl, "restore", "-p", "/proc/self/fd/3"], passing: [3: fd])
    }
}
