import Foundation

/// A small, fast, fully deterministic random generator (SplitMix64, Steele et al. 2014) for everything seeded in
/// training: initialisation, shuffling, corruptions. Same seed → same stream on every machine and every rank;
/// `Codable`, so its state can be checkpointed and resumed exactly.
public struct SeededRandom: RandomNumberGenerator, Codable, Equatable, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// An independent stream for a named purpose, e.g. `SeededRandom(seed: s, stream: "lora-init")`:
    /// the seed is mixed with a stable FNV-1a hash of the name, so streams do not overlap in practice.
    public init(seed: UInt64, stream: String) {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in stream.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        var mixer = SeededRandom(seed: seed ^ h)
        state = mixer.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits (every value exactly representable as Float).
    public mutating func unitFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * unitFloat() }

    /// Standard normal (Box–Muller, in Double).
    public mutating func normal() -> Float {
        let u = max(Double(next() >> 11) * 0x1p-53, 0x1p-60), v = Double(next() >> 11) * 0x1p-53
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates, drawing with `next() % (i + 1)` via Lemire's
    /// unbiased bounded draw from the standard library).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = Int.random(in: 0...i, using: &self)
                p.swapAt(i, j)
            }
        }
        return p
    }
}
