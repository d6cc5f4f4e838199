import PalmControl
import PalmTestSupport
import PalmWire
import Testing

/// The coordinator API's framing (a 4-byte big-endian length, then JSON) as agents and operators
/// speak it: round trips, and a peer's length checked before anything is read or allocated for it.
@Suite("Coordinator API framing")
struct CoordinatorAPITests {
    func framed(_ body: [UInt8], length: UInt32? = nil) -> [UInt8] {
        let n = length ?? UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
    }

    @Test("a request and a response survive send → receive, read in 7-byte pieces")
    func roundTrip() throws {
        let report = HostReport(destinationAddress: "10.0.0.2:7410", cpus: 8, cpuLoad: 0.25, memoryTotal: 1 << 34, memoryUsed: 1 << 32,
                                vms: [VMReport(name: "web-1", memoryBytes: 1 << 30, dirtyRate: 120)])
        let request = APIRequest(action: CoordinatorAction.agentHeartbeat.rawValue, arguments: ["vm": "web-1"], report: report)
        let out = MemoryStream([])
        try CoordinatorAPI.send(request, on: out)
        #expect(try CoordinatorAPI.receive(APIRequest.self, from: MemoryStream(out.output)) == request)

        let response = APIResponse(ok: false, error: "not the leader", leader: "coord-b at 10.0.0.9:7400")
        let back = MemoryStream([])
        try CoordinatorAPI.send(response, on: back)
        #expect(try CoordinatorAPI.receive(APIResponse.self, from: MemoryStream(back.output)) == response)
    }

    @Test("a length above the limit is refused by name before the body is read")
    func oversizedLength() throws {
        let stream = MemoryStream(framed(Array("{}".utf8), length: UInt32(CoordinatorAPI.maxMessage + 1)))
        #expect(throws: WireError.payloadTooLarge(length: UInt32(CoordinatorAPI.maxMessage + 1), limit: CoordinatorAPI.maxMessage)) {
            try CoordinatorAPI.receive(APIRequest.self, from: stream)
        }
        #expect(stream.position == 4, "only the length prefix was read")
        // A tighter limit (what an unauthenticated peer gets) applies the same way.
        #expect(throws: WireError.payloadTooLarge(length: 100, limit: 64)) {
            try CoordinatorAPI.receive(APIRequest.self, from: MemoryStream(framed([UInt8](repeating: 0x20, count: 100))), limit: 64)
        }
    }

    @Test("a body shorter than its length, and a body that is not the message, fail")
    func truncatedAndGarbage() throws {
        // 4 GiB announced, 2 bytes sent: the stream ends long before any such buffer could exist.
        #expect(throws: (any Error).self) {
            try CoordinatorAPI.receive(APIRequest.self, from: MemoryStream(framed(Array("{}".utf8), length: 1 << 20)))
        }
        #expect(throws: (any Error).self) {
            try CoordinatorAPI.receive(APIRequest.self, from: MemoryStream(framed(Array("not json".utf8))))
        }
    }

    @Test("exactly the read-only actions are answered by a follower")
    func readOnlyActions() {
        let readOnly = Set(CoordinatorAction.allCases.filter(\.isReadOnly))
        #expect(readOnly == [.hosts, .vms, .status, .history, .auditVerify, .policyShow, .policyDiff])
        #expect(!CoordinatorAction.hostsEnroll.isReadOnly && !CoordinatorAction.policyLearn.isReadOnly)
        #expect(!CoordinatorAction.agentHeartbeat.isReadOnly)
    }
}
