@testable import PalmXenDriver
import Foundation
import PalmHypervisor
import Testing

/// What palm-dest hands libxl for an incoming domain, and the UUID its mark records: the mark
/// finds a domain xenstore does not name only if it carries exactly that UUID.
@Suite("Xen incoming domain configuration")
struct XenIncomingConfigTests {
    private func cInfo(_ json: [UInt8]) throws -> [String: Any] {
        let o = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        return try #require(o["c_info"] as? [String: Any])
    }

    @Test("the incoming name replaces the VM's, the VM's UUID is kept (lowercased, as libxl prints it) and the rest untouched")
    func keepsUUID() throws {
        let source = Array(#"{"c_info":{"name":"pvh","type":"pvh","uuid":"C4E41448-3DAA-4D22-8ABC-2A966A9E8C2F"},"b_info":{"max_memkb":131072}}"#.utf8)
        let (json, uuid) = try XenToolstack.incomingConfig(source, name: "pvh--incoming")
        let c = try cInfo(json)
        #expect(c["name"] as? String == "pvh--incoming")
        #expect(uuid == "c4e41448-3daa-4d22-8abc-2a966a9e8c2f")
        #expect((c["uuid"] as? String)?.lowercased() == uuid)
        #expect(c["type"] as? String == "pvh")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        #expect((o["b_info"] as? [String: Any])?["max_memkb"] as? Int == 131072)
    }

    @Test("without a UUID (or the nil UUID) the destination chooses one and writes it into the configuration", arguments: [
        #"{"c_info":{"name":"pvh"}}"#,
        #"{"c_info":{"name":"pvh","uuid":"00000000-0000-0000-0000-000000000000"}}"#,
        #"{"c_info":{"name":"pvh","uuid":"not-a-uuid"}}"#,
    ])
    func choosesUUID(_ source: String) throws {
        let (json, uuid) = try XenToolstack.incomingConfig(Array(source.utf8), name: "pvh--incoming")
        #expect(UUID(uuidString: uuid) != nil)
        #expect(uuid != "00000000-0000-0000-0000-000000000000")
        #expect(uuid == uuid.lowercased())
        #expect(try cInfo(json)["uuid"] as? String == uuid)
    }

    @Test("a configuration that is not libxl JSON is refused with a named error")
    func refusesGarbage() {
        for bad in ["", "[]", #"{"b_info":{}}"#] {
            #expect(throws: HypervisorError.self) { try XenToolstack.incomingConfig(Array(bad.utf8), name: "x--incoming") }
        }
    }

    @Test("a domain handle prints as libxl prints UUIDs, so it compares with the configuration's")
    func handleFormat() {
        let bytes: [UInt8] = [0xc4, 0xe4, 0x14, 0x48, 0x3d, 0xaa, 0x4d, 0x22, 0x8a, 0xbc, 0x2a, 0x96, 0x6a, 0x9e, 0x8c, 0x2f]
        #expect(XenDomainInfo.uuidString(bytes) == "c4e41448-3daa-4d22-8abc-2a966a9e8c2f")
    }
}
