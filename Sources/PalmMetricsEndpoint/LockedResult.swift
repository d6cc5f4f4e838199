import FlyingSocks
import PalmSupport

/// Set-once flag: true the first time, false after.
final class LockedFlag: Sendable {
    private let box = LockedValueBox(false)
    func set() -> Bool { box.withLockedValue { was in defer { was = true }; return !was } }
}

/// How binding the endpoint went, handed from the server's task to the thread that waits for it.
final class LockedResult: Sendable {
    private let box = LockedValueBox<Result<Socket.Address?, MetricsEndpoint.Failure>?>(nil)

    func succeed(_ address: Socket.Address?) { box.withLockedValue { if $0 == nil { $0 = .success(address) } } }
    func fail(_ why: String) { box.withLockedValue { if $0 == nil { $0 = .failure(.cannotListen("", why)) } } }

    func get(_ address: String) throws -> Socket.Address? {
        switch box.current {
        case let .success(a)?: return a
        case let .failure(.cannotListen(_, why))?: throw MetricsEndpoint.Failure.cannotListen(address, why)
        case let .failure(e)?: throw e
        case nil: throw MetricsEndpoint.Failure.cannotListen(address, "no answer from the server task")
        }
    }
}
