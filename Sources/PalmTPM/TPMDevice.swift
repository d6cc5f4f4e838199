internal import CTSS2ESys
internal import CTSS2Shims
import Foundation
import PalmSupport

/// A TPM 2.0 reached through tpm2-tss (the TCTI loader and ESAPI): `device:/dev/tpmrm0` on a
/// host, `swtpm:host=…,port=…` in tests, any TCTI configuration string.
///
/// Each operation opens the TCTI, runs, flushes every object and session it loaded, and closes
/// it again: nothing is held between operations, so several processes can share one TPM (the
/// kernel's resource manager, or swtpm's one connection at a time), and a TPM that was reset
/// meanwhile costs nothing. Operations of one process are serialized; each TPM command is
/// bounded by ``timeout``.
public final class TPMDevice: Sendable {
    public let tcti: String
    /// Seconds one operation (a quote with its PCR reads, a credential activation) may take
    /// before it fails with ``TPMError/timeout(command:seconds:)``.
    public let timeout: Double
    /// One operation at a time; an operation that outlived its timeout, while it still waits for
    /// the TPM (its thread cannot be interrupted inside tpm2-tss): later ones fail at once rather
    /// than queue behind it.
    private let serial = LockedValueBox<BackgroundResult<Void>?>(nil)

    /// A TPM at `tcti`; nothing is opened until the first operation (``probe()`` checks it answers).
    public init(tcti: String, timeout: Double = 10) {
        self.tcti = tcti
        self.timeout = timeout
        // tpm2-tss logs its own failures to stderr; palm names them in its errors instead
        // (an operator can still ask for them with TSS2_LOG).
        setenv("TSS2_LOG", "all+none", 0)
    }

    /// Checks the TPM answers (a random number); a start-up check with a named error.
    public func probe() throws {
        try run("GetRandom") { [self] ctx in
            var bytes: UnsafeMutablePointer<TPM2B_DIGEST>?
            try check(Esys_GetRandom(ctx, palm_esys_tr_none(), palm_esys_tr_none(), palm_esys_tr_none(), 8, &bytes), "GetRandom")
            Esys_Free(bytes)
        }
    }

    /// Runs `body` on a fresh ESAPI context over a fresh TCTI connection, closed afterwards, on a
    /// thread of its own: the caller waits at most ``timeout`` (tpm2-tss's own timeout does not
    /// cover connecting, and a TPM that accepts a connection and never answers would hold the
    /// caller — a migration's handshake — for good).
    func run<R>(_ what: String, _ body: @escaping (OpaquePointer) throws -> R) throws -> R {
        try serial.withLockedValue { stuck in
            if let earlier = stuck, earlier.isRunning {
                throw TPMError.timeout(command: "\(what) (an earlier command still has no answer)", seconds: timeout)
            }
            nonisolated(unsafe) var value: R?
            nonisolated(unsafe) let body = body
            let job = BackgroundResult(name: "palm-tpm") { [self] in value = try session(body) }
            guard let outcome = job.wait(seconds: timeout) else {
                stuck = job
                throw TPMError.timeout(command: what, seconds: timeout)
            }
            try outcome.get()
            guard let value else { throw TPMError.unexpected("\(what) returned nothing") }
            return value
        }
    }

    private func session<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        var tctiContext: OpaquePointer?
        let rc = Tss2_TctiLdr_Initialize(tcti, &tctiContext)
        guard rc == 0, let opened = tctiContext else {
            throw TPMError.unavailable(tcti: tcti, detail: Tss2_RC_Decode(rc).map { String(cString: $0) } ?? "TCTI loader failed")
        }
        var context: OpaquePointer?
        defer { Tss2_TctiLdr_Finalize(&tctiContext) }
        let erc = Esys_Initialize(&context, opened, nil)
        guard erc == 0, let esys = context else {
            throw TPMError.unavailable(tcti: tcti, detail: Tss2_RC_Decode(erc).map { String(cString: $0) } ?? "ESAPI failed")
        }
        defer { Esys_Finalize(&context) }
        _ = Esys_SetTimeout(esys, Int32(min(timeout * 1000, Double(Int32.max))))
        return try body(esys)
    }

    /// Throws the named error for a failed command.
    func check(_ rc: UInt32, _ command: String) throws {
        guard rc == 0 else { throw TPMError.from(rc, command: command, timeout: timeout) }
    }

    /// Flushes a loaded object or session, ignoring failures (best effort on the way out).
    func flush(_ ctx: OpaquePointer, _ handle: ESYS_TR) {
        _ = Esys_FlushContext(ctx, handle)
    }
}
