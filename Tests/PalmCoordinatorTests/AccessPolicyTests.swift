import PalmControl
import PalmCoordinator
import PalmTLS
import Testing
import PalmSecurity

/// Every role × every action under the shipped policy, and the attacks on it.
@Suite("Access policy")
struct AccessPolicyTests {
    let policy = try! AccessPolicy.parse(AccessPolicy.defaultText)

    static let expected: [Role: Set<CoordinatorAction>] = [
        .admin: Set(CoordinatorAction.allCases),
        .operator: [.hosts, .vms, .status, .history, .migrate, .cancel, .evacuate, .maintenance, .rebalance, .policyShow, .policyDiff],
        .auditor: [.hosts, .vms, .status, .history, .auditVerify, .policyShow, .policyDiff],
        .agent: [.agentHeartbeat],
        .coordinator: [],
    ]

    @Test("the RBAC matrix: each role is allowed exactly its actions", arguments: Role.allCases)
    func matrix(_ role: Role) {
        for action in CoordinatorAction.allCases {
            let d = policy.decide(role: role, action: action)
            #expect(d.allowed == (Self.expected[role]?.contains(action) ?? false), "\(role) \(action): \(d.reason)")
        }
    }

    @Test("a certificate without a role is denied everything")
    func noRole() {
        for action in CoordinatorAction.allCases { #expect(!policy.decide(role: nil, action: action).allowed) }
    }

    @Test("host groups scope a role to some hosts")
    func hostGroups() throws {
        let p = try AccessPolicy.parse("""
        [roles.operator]
        actions = ["migrate"]
        host_groups = ["rack-1"]
        [groups]
        rack-1 = ["node-a"]
        """)
        #expect(p.decide(role: .operator, action: .migrate, host: "node-a").allowed)
        #expect(!p.decide(role: .operator, action: .migrate, host: "node-z").allowed)
        #expect(!p.decide(role: .operator, action: .cancel, host: "node-a").allowed)
        #expect(!p.decide(role: .admin, action: .migrate).allowed, "roles not in the policy get nothing")
    }

    @Test("a policy naming an unknown role, action or key is refused", arguments: [
        ("[roles.root]\nactions = [\"*\"]", "unknown role 'root'"),
        ("[roles.operator]\nactions = [\"format-disks\"]", "unknown action 'format-disks'"),
        ("[roles.operator]\nactoins = [\"migrate\"]", "unknown key 'roles.operator.actoins'"),
        ("allow_all = true", "unknown key 'allow_all'"),
    ])
    func badPolicy(_ text: String, _ message: String) {
        #expect {
            _ = try AccessPolicy.parse(text)
        } throws: { ($0 as? AccessPolicy.PolicyError)?.description.contains(message) == true }
    }
}
