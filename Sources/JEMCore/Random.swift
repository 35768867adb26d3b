// Random.swift: the seeded random source. Every random choice in robust-eval flows from one
// `--seed` through values of this type; nothing reads a global generator.
import Foundation

/// xoshiro256** with SplitMix64 seeding. Its state is four words, so it can be checkpointed.
public struct SeededRandom: RandomNumberGenerator, Codable, Equatable {
    public var state: [UInt64]

    public init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        state = [splitmix(), splitmix(), splitmix(), splitmix()]
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((state[1] &* 5) << 7 | (state[1] &* 5) >> 57) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3]
        state[2] ^= t
        state[3] = (state[3] << 45) | (state[3] >> 19)
        return result
    }

    /// Uniform in [0, 1).
    @inline(__always)
    public mutating func uniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// A new independent generator derived from this one (for per-purpose streams).
    public mutating func split() -> SeededRandom { SeededRandom(seed: next()) }

    /// Fills `t` with N(0, std²) samples (Box–Muller).
    public mutating func fillNormal(_ t: Tensor, std: Float = 1) {
        let p = t.data
        var i = 0
        while i < t.count {
            let u1 = max(Double(next() >> 11) * 0x1.0p-53, 1e-300)
            let u2 = Double(next() >> 11) * 0x1.0p-53
            let r = (-2 * Foundation.log(u1)).squareRoot()
            p[i] = Float(r * cos(2 * .pi * u2)) * std
            if i + 1 < t.count { p[i + 1] = Float(r * sin(2 * .pi * u2)) * std }
            i += 2
        }
    }

    /// Fills `t` with U(lo, hi) samples.
    public mutating func fillUniform(_ t: Tensor, lo: Float, hi: Float) {
        for i in 0..<t.count { t.data[i] = lo + (hi - lo) * uniform() }
    }

    /// A permutation of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        a.shuffle(using: &self)
        return a
    }
}
