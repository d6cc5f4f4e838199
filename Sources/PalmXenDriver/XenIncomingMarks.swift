import PalmHypervisor

/// palm-dest's record, in xenstore, of the incoming domains it builds — so that a restarted
/// palm-dest finds one even when the killed one left it in the window where it exists but has no
/// name: libxl creates the domain (`xc_domain_create`) and only then, in a xenstore transaction of
/// its own, writes `/local/domain/N` with the name. Recovery by name alone missed such a domain,
/// and it stayed for good as a paused `(null)` in `xl list`.
///
/// ```text
///   /tool/palm/incoming/<uuid> = "NAME--incoming"      uuid: c_info.uuid of the incoming domain
///
///   written   before libxl starts building (XenIncomingDomain.init)
///   removed   when the domain is discarded, or once it runs under NAME (settle, completeIncoming)
/// ```
///
/// A marked domain that xenstore does not name is taken as the killed build's only if it also
/// carries the mark's UUID, is paused, never ran (no CPU time) and is not dying: whatever else it
/// was, destroying it loses no guest state. The marks live as long as xenstored does, like the
/// domains they describe.
struct XenIncomingMarks {
    static let root = "/tool/palm/incoming"
    let xc: XenControl

    /// An incoming domain about to be built: its UUID and the name libxl gives it.
    struct Mark: Equatable {
        var uuid: String
        var incomingName: String
    }

    func set(_ mark: Mark) throws {
        try xc.write("\(Self.root)/\(mark.uuid)", mark.incomingName)
    }

    func remove(uuid: String) throws {
        try xc.remove("\(Self.root)/\(uuid)")
    }

    /// Every mark left in xenstore.
    func all() -> [Mark] {
        xc.list(Self.root).compactMap { uuid in
            xc.read("\(Self.root)/\(uuid)").map { Mark(uuid: uuid, incomingName: $0) }
        }
    }

    /// The marks of incoming domains of `vm`.
    func marks(vm: String) -> [Mark] {
        all().filter { $0.incomingName == vm + XenIncomingDomain.suffix }
    }

    /// Domains a killed build of `mark` left before xenstore named them (see the type's doc).
    func unnamedBuilds(of mark: Mark) throws -> [XenDomainInfo] {
        try xc.domains().filter { d in
            d.domid != 0 && !d.dying && d.paused && d.cpuTime == 0
                && d.uuidString == mark.uuid.lowercased() && xc.name(of: d.domid) == nil
        }
    }
}
