import PalmSupport
import PalmControl
import PalmWire

/// What a request may hold, checked before any of it is audited, logged or echoed: a caller
/// cannot make the audit log or the journal carry its megabytes.
public struct RequestLimits: Sendable, Equatable {
    public var maxAction = 64
    public var maxArguments = 16
    public var maxKey = 32
    public var maxValue = 256
    /// Denied requests audited one by one per caller per minute; the rest are counted into one
    /// entry ("N further denials") when the minute is over.
    public var auditedDenialsPerMinute = 20
    public init() {}

    /// Why `request` is refused unread, or nil. Never quotes the offending field.
    public func problem(with request: APIRequest) -> String? {
        if request.action.utf8.count > maxAction { return "action name of \(request.action.utf8.count) bytes (at most \(maxAction))" }
        if !request.action.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E || $0 == 0x2D }) { return "action name with characters other than a-z . -" }
        if request.arguments.count > maxArguments { return "\(request.arguments.count) arguments (at most \(maxArguments))" }
        for (k, v) in request.arguments {
            if k.utf8.count > maxKey { return "an argument name of \(k.utf8.count) bytes (at most \(maxKey))" }
            if v.utf8.count > maxValue { return "an argument value of \(v.utf8.count) bytes (at most \(maxValue))" }
        }
        return nil
    }
}

/// Per caller, how many denials were audited in the current minute and how many were not.
final class DenialLimiter: @unchecked Sendable {
    private struct Window { var start: Double; var audited: Int; var suppressed: Int }
    private let windows = LockedValueBox<[String: Window]>([:])
    let perMinute: Int

    init(perMinute: Int) { self.perMinute = perMinute }

    enum Verdict: Equatable {
        /// Audit this denial; first report that many earlier ones were suppressed.
        case audit(suppressedBefore: Int)
        case suppress
    }

    func admit(_ actor: String, now: Double) -> Verdict {
        windows.withLockedValue { w in
            var window = w[actor] ?? Window(start: now, audited: 0, suppressed: 0)
            var carried = 0
            if now - window.start >= 60 {
                carried = window.suppressed
                window = Window(start: now, audited: 0, suppressed: 0)
            }
            defer { w[actor] = window }
            guard window.audited < perMinute else {
                window.suppressed += 1
                return .suppress
            }
            window.audited += 1
            return .audit(suppressedBefore: carried)
        }
    }
}
