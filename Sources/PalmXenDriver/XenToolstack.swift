import CXenShims
import Foundation
import PalmHypervisor
import PalmSupport
#if canImport(Glibc)
import Glibc
#endif

/// The parts of a Xen host palm leaves to Xen's toolstack library, libxl, called in the agent's
/// own process as xl's receiver does — no `xl` child: a domain's configuration, building an
/// incoming domain from a migration stream, renaming, destroying (xenstore, console and
/// backends cleaned up as libxl does).
///
/// Guarantees: every call opens its own libxl context with its own log, so calls on different
/// threads share nothing, and a failure is a ``HypervisorError/toolFailed(tool:status:output:)``
/// carrying libxl's error code and the last lines it logged.
struct XenToolstack: Sendable {
    /// Seconds a restore may take after its stream ended, and a libxl call at most.
    var timeout: Double = 120

    /// The domain's libxl configuration as JSON (what `xl list -l` prints), the form a restore reads.
    func configJSON(domid: UInt32) throws -> [UInt8] {
        try Self.configJSON(context: LibxlContext(), domid: domid)
    }

    static func configJSON(context: LibxlContext, domid: UInt32) throws -> [UInt8] {
        var text: UnsafeMutablePointer<CChar>?
        try context.check(palm_libxl_config_json(context.handle, domid, &text), "libxl_retrieve_domain_configuration(\(domid))")
        guard let text else { throw HypervisorError.guestFailed("libxl returned no configuration for domain \(domid)") }
        defer { palm_libxl_free(text) }
        return Array(String(cString: text).utf8)
    }

    /// `c_info.type` of a configuration ("pvh", "hvm", "pv").
    static func guestType(_ configJSON: [UInt8]) -> String? {
        guard let o = try? JSONSerialization.jsonObject(with: Data(configJSON)) as? [String: Any],
              let cInfo = o["c_info"] as? [String: Any] else { return nil }
        return cInfo["type"] as? String
    }

    /// The configuration the destination restores from: `c_info.name` replaced (a temporary
    /// name) and `c_info.uuid` kept — the VM keeps its UUID, as with `xl migrate` — or, when the
    /// source sent none, chosen here, so the caller knows the UUID the domain will carry.
    static func incomingConfig(_ configJSON: [UInt8], name: String) throws -> (json: [UInt8], uuid: String) {
        guard var o = try? JSONSerialization.jsonObject(with: Data(configJSON)) as? [String: Any],
              var cInfo = o["c_info"] as? [String: Any] else {
            throw HypervisorError.corruptImage("the domain configuration is not libxl JSON with a c_info section")
        }
        cInfo["name"] = name
        var uuid = (cInfo["uuid"] as? String)?.lowercased() ?? ""
        if UUID(uuidString: uuid) == nil || uuid == "00000000-0000-0000-0000-000000000000" {
            uuid = UUID().uuidString.lowercased()
            cInfo["uuid"] = uuid
        }
        o["c_info"] = cInfo
        guard let data = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) else {
            throw HypervisorError.corruptImage("the domain configuration cannot be re-encoded")
        }
        return (Array(data), uuid)
    }

    func rename(domid: UInt32, to name: String) throws {
        let context = try LibxlContext()
        try context.check(palm_libxl_rename(context.handle, domid, name), "libxl_domain_rename(\(domid), \(name))")
    }

    func destroy(domid: UInt32) throws {
        let context = try LibxlContext()
        try context.check(palm_libxl_destroy(context.handle, domid), "libxl_domain_destroy(\(domid))")
    }

    /// Starts building a domain from the libxl stream read from `fd` (which the restore owns and
    /// closes when it ends); the domain it creates stays paused until palm unpauses it after COMMIT.
    func startRestore(configJSON: [UInt8], readingFrom fd: Int32) throws -> LibxlRestore {
        try LibxlRestore(context: LibxlContext(), configJSON: configJSON, fd: fd)
    }
}

/// One libxl context and the file its log goes to (unlinked at once; read back on failure).
final class LibxlContext: @unchecked Sendable {
    let handle: OpaquePointer
    private let logFD: Int32

    init() throws {
        var template = Array("/tmp/palm-libxl.XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw HypervisorError.systemCall(call: "mkstemp", errno: errno) }
        unlink(template)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        guard let h = palm_libxl_open(fd, 0) else {
            let e = errno
            close(fd)
            throw HypervisorError.systemCall(call: "libxl_ctx_alloc", errno: e)
        }
        handle = h
        logFD = fd
    }

    deinit {
        palm_libxl_close(handle)
        close(logFD)
    }

    /// The last lines libxl logged (at most 64 KiB are read).
    func logTail(lines: Int = 6) -> String {
        let end = lseek(logFD, 0, SEEK_END)
        guard end > 0 else { return "" }
        let start = max(0, end - 65_536)
        var buf = [UInt8](repeating: 0, count: Int(end - start))
        let n = pread(logFD, &buf, buf.count, start)
        guard n > 0 else { return "" }
        return String(decoding: buf.prefix(n), as: UTF8.self)
            .split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    func check(_ rc: Int32, _ call: String) throws {
        guard rc == 0 else { throw HypervisorError.toolFailed(tool: call, status: rc, output: logTail()) }
    }
}

/// `libxl_domain_create_restore` running on a thread of its own (the call blocks until the stream
/// ends). Guarantees: the stream's read end is closed when the restore ends, whatever the
/// outcome; on failure libxl has destroyed what it built.
final class LibxlRestore: Sendable {
    private let restore: BackgroundResult<UInt32>

    init(context: LibxlContext, configJSON: [UInt8], fd: Int32) throws {
        let json = configJSON + [0]
        restore = BackgroundResult(name: "palm-libxl-restore") {
            var domid: UInt32 = 0
            let rc = json.withUnsafeBufferPointer { p in
                p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) {
                    palm_libxl_restore(context.handle, $0, fd, &domid)
                }
            }
            close(fd)
            if rc == PALM_LIBXL_BAD_CONFIG {
                throw HypervisorError.corruptImage("libxl cannot parse the domain configuration: \(context.logTail())")
            }
            try context.check(rc, "libxl_domain_create_restore")
            return domid
        }
    }

    /// True until libxl has returned.
    var isRunning: Bool { restore.isRunning }

    /// Why the restore failed, once libxl has returned with an error (nil while it runs or after
    /// it succeeded): what to report when the stream it was reading breaks.
    var failure: Error? {
        if case let .failure(error)? = restore.wait(seconds: 0) { return error }
        return nil
    }

    /// Waits at most `timeout` seconds for the restore and returns the new domain's id.
    func wait(timeout: Double) throws -> UInt32 {
        guard let outcome = restore.wait(seconds: timeout) else {
            throw HypervisorError.guestFailed("libxl_domain_create_restore did not finish within \(Int(timeout)) s of its stream's end")
        }
        return try outcome.get()
    }
}
