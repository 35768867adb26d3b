// SGLD.swift: the one Langevin sampler of robust-eval, used by JEM training, the SGLD-refinement
// defense and `sample`. As in the reference, steps are taken in the model's normalised input
// space u = (x − mean)/std:  u ← u + α·∇ᵤ logsumexp f + σ·N(0, I)  (or ∇ᵤ f(x)[y] when
// class-conditional), with the model in eval mode. Callers hold pixels x; the update is mapped
// back per channel: x ← x + std·(α·std·∇ₓ + σ·N).

public struct SGLDConfig: Codable, Equatable, Sendable {
    /// α, the step size on the gradient (reference 1.0).
    public var stepSize: Float = 1
    /// σ, the noise standard deviation (reference 0.01).
    public var noise: Float = 0.01
    public var steps: Int = 20
    /// JEM++: clamp the normalised-space gradient to [−1, 1] per coordinate.
    public var clampGradient: Bool = false
    /// JEM++: keep samples in the image domain (pixels clamped to [0, 1]) after every step.
    public var clampSamples: Bool = false

    public init(stepSize: Float = 1, noise: Float = 0.01, steps: Int = 20, clampGradient: Bool = false, clampSamples: Bool = false) {
        self.stepSize = stepSize; self.noise = noise; self.steps = steps
        self.clampGradient = clampGradient; self.clampSamples = clampSamples
    }

    public func validate() throws {
        guard steps >= 0 else { throw JEMError.invalidArgument("SGLD steps must be ≥ 0, got \(steps)") }
        guard stepSize.isFinite, stepSize >= 0 else { throw JEMError.invalidArgument("SGLD step size must be ≥ 0, got \(stepSize)") }
        guard noise.isFinite, noise >= 0 else { throw JEMError.invalidArgument("SGLD noise must be ≥ 0, got \(noise)") }
    }
}

public enum SGLD {
    /// Runs `config.steps` Langevin steps on x (pixels, modified in place).
    /// - Parameters:
    ///   - labels: if given, samples from p(x|y) ∝ exp f(x)[y] instead of p(x).
    ///   - rng: the noise source.
    public static func run(_ model: any Network, _ x: Tensor, config: SGLDConfig, labels: [Int]? = nil,
                           rng: inout some NoiseSource) throws {
        let noise = Tensor(shape: x.shape)
        for _ in 0..<config.steps { try step(model, x, config: config, labels: labels, noise: noise, rng: &rng) }
    }

    /// One Langevin step on x in place; `noise` is scratch space of x's shape.
    public static func step(_ model: any Network, _ x: Tensor, config: SGLDConfig, labels: [Int]? = nil,
                            noise: Tensor, rng: inout some NoiseSource) throws {
        let scale = model.inputScale
        let n = x.shape[0], ch = x.shape[1], hw = x.shape[2] * x.shape[3]
        let (_, g) = try model.inputGradient(x) { z in
            let d = Tensor(shape: z.shape)
            if let labels {
                let k = z.shape[1]
                for (i, y) in labels.enumerated() { d.data[i * k + y] = 1 }
            } else {
                Losses.addLogsumexpGradient(d, logits: z, weights: Array(repeating: 1, count: z.shape[0]))
            }
            return d
        }
        if config.noise > 0 { rng.fillNormal(noise, std: config.noise) }
        for i in 0..<n {
            for k in 0..<ch {
                let s = scale[k]
                let base = (i * ch + k) * hw
                for j in base..<(base + hw) {
                    var gu = s * g.data[j]               // ∇ᵤ = std · ∇ₓ
                    if config.clampGradient { gu = min(max(gu, -1), 1) }
                    var v = x.data[j] + s * (config.stepSize * gu + (config.noise > 0 ? noise.data[j] : 0))
                    if config.clampSamples { v = min(max(v, 0), 1) }
                    x.data[j] = v
                }
            }
        }
    }
}
