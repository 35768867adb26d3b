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
    public mutating func fillNormal(_ t: Tensor, std: Float = 1) { fillNormal(t.data, count: t.count, std: std) }

    /// Fills `count` floats at `p` with N(0, std²) samples (Box–Muller, pairs in order).
    public mutating func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int, std: Float = 1) {
        var i = 0
        while i < count {
            let u1 = max(Double(next() >> 11) * 0x1.0p-53, 1e-300)
            let u2 = Double(next() >> 11) * 0x1.0p-53
            let r = (-2 * Foundation.log(u1)).squareRoot()
            p[i] = Float(r * cos(2 * .pi * u2)) * std
            if i + 1 < count { p[i + 1] = Float(r * sin(2 * .pi * u2)) * std }
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

/// What SGLD draws its noise from: one stream for a whole batch (training, sampling) or one stream
/// per example (evaluation, where an example's result must not depend on its batch).
public protocol NoiseSource {
    mutating func fillNormal(_ t: Tensor, std: Float)
}

extension SeededRandom: NoiseSource {}

/// Per-example random streams keyed by (seed, example index, purpose), so an example's random
/// choices do not depend on the batch it is in, the thread count, the shard or the machine.
public enum ExampleStreams {
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A stable 64-bit key for a purpose name (FNV-1a).
    public static func key(_ purpose: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in purpose.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    /// The generator for example `index` and `purpose` under `seed`.
    public static func stream(seed: UInt64, example index: Int, purpose: String) -> SeededRandom {
        SeededRandom(seed: mix(mix(mix(seed) ^ UInt64(truncatingIfNeeded: index)) ^ key(purpose)))
    }
}

/// One generator per example of a batch: a tensor whose rows split into `count` equal blocks
/// (an example's rows, e.g. its SGLD chains) takes block i's noise from stream i only. A
/// stochastic classifier draws from this, so its randomness for an example is the same whatever
/// batch, thread count, shard or rank the example is evaluated in.
public struct RowStreams: NoiseSource {
    public var streams: [SeededRandom]

    public init(_ streams: [SeededRandom]) { self.streams = streams }

    /// Streams for `examples` (global indices) keyed by `purpose`.
    public init<S: Sequence>(seed: UInt64, examples: S, purpose: String) where S.Element == Int {
        streams = examples.map { ExampleStreams.stream(seed: seed, example: $0, purpose: purpose) }
    }

    public var count: Int { streams.count }

    public mutating func fillNormal(_ t: Tensor, std: Float = 1) {
        let n = streams.count
        precondition(n > 0 && t.shape[0] % n == 0, "RowStreams: \(t.shape[0]) rows for \(n) streams")
        let block = t.count / n
        for i in 0..<n { streams[i].fillNormal(t.data + i * block, count: block, std: std) }
    }

    /// Runs `body` with the streams of `rows` and keeps what it drew.
    public mutating func rows<R>(_ rows: [Int], _ body: (inout RowStreams) throws -> R) rethrows -> R {
        var sub = RowStreams(rows.map { streams[$0] })
        defer { for (j, r) in rows.enumerated() { streams[r] = sub.streams[j] } }
        return try body(&sub)
    }
}
