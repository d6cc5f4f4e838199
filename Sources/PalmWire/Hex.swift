/// Lower-case hexadecimal for identifiers, digests and signatures in logs, files and journals.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses an even number of hex digits (either case); nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

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
