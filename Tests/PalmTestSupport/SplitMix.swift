/// A small deterministic generator (SplitMix64): the same seed gives the same sequence, so a
/// failing generated case or fault schedule can be replayed from its seed.
public struct SplitMix: RandomNumberGenerator {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 0 ..< n.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// A value in `range`, in steps of 1/10,000 of it.
    public mutating func seconds(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + Double(next() % 10_000) / 10_000 * (range.upperBound - range.lowerBound)
    }
}
