// SGLDDefense.swift: the paper's SGLD-refinement defense as a classifier (reference
// attack_model.py): each input is copied into n chains, each chain starts at x + N(0, σ²) and takes
// K Langevin steps u ← u + α·∇ᵤ logsumexp f + σ_n·N(0, I) in the model's normalised space; the
// logits are averaged over the chains. All chains of a batch run as one batch.
//
// How an attacker differentiates it is part of the type (`DefenseGradient`) and of every report:
// BPDA (the chain's Jacobian taken as the identity, gradient at the refined points, averaged over
// chains — what the reference attack effectively did) or the full chain (the SGLD updates
// differentiated exactly with Hessian–vector products). Both average over `eot` independent draws
// of the defense's randomness per attack step.
import Attacks
import JEMCore

public enum DefenseGradient: String, Codable, CaseIterable, Sendable {
    case bpda, full
}

public struct DefenseConfig: Codable, Equatable, Sendable {
    /// K, refinement steps (JEM-0/1/10 in the paper's figure).
    public var steps: Int = 10
    /// n, chains per input (reference 5).
    public var chains: Int = 5
    /// σ of the N(0, σ²) start noise, normalised space (reference 0.03).
    public var initNoise: Float = 0.03
    /// α (reference 1).
    public var stepSize: Float = 1
    /// σ_n (reference 0.01).
    public var noise: Float = 0.01
    public var gradient: DefenseGradient = .bpda
    /// R, draws of the defense's randomness averaged per attack gradient.
    public var eot: Int = 1

    public init(steps: Int = 10, chains: Int = 5, initNoise: Float = 0.03, stepSize: Float = 1, noise: Float = 0.01,
                gradient: DefenseGradient = .bpda, eot: Int = 1) {
        self.steps = steps; self.chains = chains; self.initNoise = initNoise; self.stepSize = stepSize
        self.noise = noise; self.gradient = gradient; self.eot = eot
    }

    public func validate() throws {
        guard steps >= 0 else { throw JEMError.invalidArgument("--sgld-steps must be ≥ 0, got \(steps)") }
        guard chains >= 1 else { throw JEMError.invalidArgument("--chains must be ≥ 1, got \(chains)") }
        guard initNoise >= 0, initNoise.isFinite else { throw JEMError.invalidArgument("--init-noise must be ≥ 0, got \(initNoise)") }
        guard stepSize >= 0, stepSize.isFinite else { throw JEMError.invalidArgument("--sgld-step-size must be ≥ 0, got \(stepSize)") }
        guard noise >= 0, noise.isFinite else { throw JEMError.invalidArgument("--sgld-noise must be ≥ 0, got \(noise)") }
        guard eot >= 1 else { throw JEMError.invalidArgument("--eot must be ≥ 1, got \(eot)") }
    }

    /// "JEM-10 (5 chains, σ 0.03, α 1, σ_n 0.01)".
    public var name: String { "SGLD-\(steps)" }
    public var summary: String {
        "\(steps) SGLD steps (α \(stepSize), σ_n \(noise)), \(chains) chain(s) from x + N(0, \(initNoise)²), logits averaged over chains"
    }
}

public final class SGLDDefense: Classifier {
    public let model: any Network
    public let config: DefenseConfig

    public init(model: any Network, config: DefenseConfig) throws {
        try config.validate()
        self.model = model; self.config = config
    }

    public var numClasses: Int { model.numClasses }
    public var isStochastic: Bool { config.initNoise > 0 || (config.steps > 0 && config.noise > 0) }
    public var gradientDescription: String {
        let eot = config.eot > 1 ? ", EOT over \(config.eot) draws" : ""
        switch config.gradient {
        case .bpda: return "BPDA (identity Jacobian through the \(config.steps) SGLD steps, gradient at the refined points averaged over \(config.chains) chain(s)\(eot))"
        case .full: return "full chain (exact gradient through the \(config.steps) SGLD steps via Hessian–vector products, averaged over \(config.chains) chain(s)\(eot))"
        }
    }

    var sgld: SGLDConfig { SGLDConfig(stepSize: config.stepSize, noise: config.noise, steps: config.steps) }

    /// The chain starts: each input repeated `chains` times (chain-major within an input) plus noise.
    func starts(_ x: Tensor, rng: inout RowStreams) -> Tensor {
        let n = x.shape[0], per = x.count / max(n, 1), r = config.chains
        let out = Tensor(shape: [n * r] + Array(x.shape.dropFirst()))
        for i in 0..<n { for j in 0..<r { (out.data + (i * r + j) * per).update(from: x.data + i * per, count: per) } }
        if config.initNoise > 0 {
            let noise = Tensor(shape: out.shape)
            rng.fillNormal(noise, std: config.initNoise)
            let hw = x.shape[2] * x.shape[3], ch = x.shape[1]
            for i in 0..<out.count { out.data[i] += model.inputScale[(i / hw) % ch] * noise.data[i] }
        }
        return out
    }

    /// Refined chains (n·chains, C, H, W).
    public func refine(_ x: Tensor, rng: inout RowStreams) throws -> Tensor {
        let xs = starts(x, rng: &rng)
        try SGLD.run(model, xs, config: sgld, rng: &rng)
        return xs
    }

    /// Mean over chains of (n·chains, K) logits.
    func chainMean(_ z: Tensor, n: Int) -> Tensor {
        let r = config.chains, k = z.shape[1]
        if r == 1 { return z }
        let out = Tensor(shape: [n, k])
        let inv = 1 / Float(r)
        for i in 0..<n { for j in 0..<r { for c in 0..<k { out.data[i * k + c] += z.data[(i * r + j) * k + c] } } }
        for i in 0..<out.count { out.data[i] *= inv }
        return out
    }

    /// Spreads d(mean logits) to the chains: each chain's logits get 1/chains of it.
    func chainSpread(_ d: Tensor) -> Tensor {
        let r = config.chains, k = d.shape[1], n = d.shape[0]
        if r == 1 { return d }
        let out = Tensor(shape: [n * r, k])
        let inv = 1 / Float(r)
        for i in 0..<n { for j in 0..<r { for c in 0..<k { out.data[(i * r + j) * k + c] = d.data[i * k + c] * inv } } }
        return out
    }

    /// Sums chain gradients back to their inputs.
    func chainSum(_ g: Tensor, n: Int) -> Tensor {
        let r = config.chains
        if r == 1 { return g }
        let per = g.count / g.shape[0]
        let out = Tensor(shape: [n] + Array(g.shape.dropFirst()))
        for i in 0..<n { for j in 0..<r { for e in 0..<per { out.data[i * per + e] += g.data[(i * r + j) * per + e] } } }
        return out
    }

    public func logits(_ x: Tensor, rng: inout RowStreams) throws -> Tensor {
        chainMean(try model.logits(try refine(x, rng: &rng)), n: x.shape[0])
    }

    public func inputGradient(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        try chainGradient(x, rng: &rng, seed: seed)
    }

    func chainGradient(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        let total = Tensor(shape: x.shape)
        var meanLogits: Tensor?
        for _ in 0..<config.eot {
            let (z, g) = config.gradient == .bpda ? try bpda(x, rng: &rng, seed: seed) : try fullChain(x, rng: &rng, seed: seed)
            for i in 0..<total.count { total.data[i] += g.data[i] }
            if let m = meanLogits { for i in 0..<m.count { m.data[i] += z.data[i] } } else { meanLogits = z }
        }
        let inv = 1 / Float(config.eot)
        if config.eot > 1 {
            for i in 0..<total.count { total.data[i] *= inv }
            for i in 0..<meanLogits!.count { meanLogits!.data[i] *= inv }
        }
        return (meanLogits!, total)
    }

    /// Gradient at the refined points, the chain's Jacobian taken as the identity.
    func bpda(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (Tensor, Tensor) {
        let n = x.shape[0]
        let xr = try refine(x, rng: &rng)
        var mean: Tensor?
        let (_, g) = try model.inputGradient(xr) { z in
            let m = chainMean(z, n: n)
            mean = m
            return chainSpread(try seed(m))
        }
        return (mean!, chainSum(g, n: n))
    }

    /// The exact gradient through the chain: x_{k+1} = x_k + S(α S ∇ₓ lse f(x_k) + σ_n ξ_k), so
    /// v_k = v_{k+1} + α S² H(x_k) v_{k+1}, with H the Hessian of lse∘f (symmetric) and S the
    /// per-channel std.
    func fullChain(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (Tensor, Tensor) {
        let n = x.shape[0]
        let xk = starts(x, rng: &rng)
        var trajectory: [Tensor] = []
        let noise = Tensor(shape: xk.shape)
        for _ in 0..<config.steps {
            trajectory.append(xk.copy())
            try SGLD.step(model, xk, config: sgld, noise: noise, rng: &rng)
        }
        var mean: Tensor?
        let (_, v) = try model.inputGradient(xk) { z in
            let m = chainMean(z, n: n)
            mean = m
            return chainSpread(try seed(m))
        }
        let ch = x.shape[1], hw = x.shape[2] * x.shape[3]
        let s2 = model.inputScale.map { config.stepSize * $0 * $0 }
        let u = Tensor(shape: v.shape)
        for xkPrev in trajectory.reversed() {
            for i in 0..<u.count { u.data[i] = s2[(i / hw) % ch] * v.data[i] }
            let hu = try model.logDensityHVP(xkPrev, u)
            for i in 0..<v.count { v.data[i] += hu.data[i] }   // v is this pass's own gradient: update in place
        }
        return (mean!, chainSum(v, n: n))
    }
}
