/// Sizes written by people: "4096", "512M", "16G", "1GiB".
public enum ByteSize {
    public static func parse(_ text: String) -> UInt64? {
        let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var t = Substring(text.uppercased()).drop(while: { $0 == " " })
        while t.last == " " { t = t.dropLast() }
        if t.hasSuffix("IB") { t = t.dropLast(2) }
        if let last = t.last, let mult = units[last] {
            guard let n = UInt64(t.dropLast()), n <= UInt64.max / mult else { return nil }
            return n * mult
        }
        return UInt64(t)
    }

    /// `bytes` in the largest unit that divides it exactly: "16K", "1M", "4096".
    public static func format(_ bytes: UInt64) -> String {
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] where bytes > 0 && bytes % (1 << UInt64(shift)) == 0 {
            return "\(bytes >> UInt64(shift))\(unit)"
        }
        return "\(bytes)"
    }
}
