// PGD.swift: the one projected-gradient loop (Madry et al.) for every gradient attack. The L∞
// and L2 variants supply only their random start, step direction (sign / L2-normalised gradient)
// and projection; FGSM is the one-step case. Restarts keep the per-example worst case: an example
// counts as broken if any iterate of any restart breaks it.
import Foundation
import JEMCore

public struct PGDConfig: Codable, Equatable, Sendable {
    public var norm: ThreatNorm = .linf
    public var epsilon: Float = 8.0 / 255
    /// Absolute step size.
    public var stepSize: Float = 2.0 / 255
    public var steps: Int = 10
    public var randomStart: Bool = true
    public var restarts: Int = 1
    public var targeted: Bool = false
    public var loss: AttackLoss = .ce
    /// Stop attacking examples once broken (their first adversarial is kept).
    public var earlyStop: Bool = false

    public init() {}

    /// Common practice: L∞ step 2/255 for ε = 8/255 (ε/4), L2 step 2.5·ε/steps.
    public static func defaultStepSize(norm: ThreatNorm, epsilon: Float, steps: Int) -> Float {
        norm == .linf ? epsilon / 4 : 2.5 * epsilon / Float(max(steps, 1))
    }

    public func validate() throws {
        guard epsilon.isFinite, epsilon >= 0 else { throw JEMError.invalidArgument("--eps must be a non-negative number, got \(epsilon)") }
        if norm == .linf && epsilon > 1 { throw JEMError.invalidArgument("--eps \(epsilon) is above 1, the whole pixel range, for L∞") }
        guard steps >= 1 else { throw JEMError.invalidArgument("--steps must be ≥ 1 for PGD, got \(steps)") }
        guard stepSize.isFinite, stepSize >= 0 else { throw JEMError.invalidArgument("--step-size must be ≥ 0, got \(stepSize)") }
        guard restarts >= 1 else { throw JEMError.invalidArgument("--restarts must be ≥ 1, got \(restarts)") }
    }

    public var summary: String {
        let e = norm == .linf ? String(format: "%.4f (%.1f/255)", epsilon, epsilon * 255) : String(format: "%.4f", epsilon)
        return "PGD-\(norm == .linf ? "L∞" : "L2") ε=\(e), step \(String(format: "%.4f", stepSize)), \(steps) steps, \(restarts) restart(s), \(randomStart ? "random start" : "no random start"), \(loss.rawValue) loss, \(targeted ? "targeted" : "untargeted")\(earlyStop ? ", early stop" : "")"
    }
}

public struct PGD: Attack {
    public let config: PGDConfig
    public var norm: ThreatNorm { config.norm }
    public var epsilon: Float { config.epsilon }

    public init(config: PGDConfig) throws {
        try config.validate()
        self.config = config
    }

    /// FGSM: x + ε·sign(∇) (L∞) or x + ε·∇/‖∇‖ (L2), clipped; one step, no random start.
    public static func fgsm(norm: ThreatNorm = .linf, epsilon: Float, loss: AttackLoss = .ce) throws -> PGD {
        var c = PGDConfig()
        c.norm = norm; c.epsilon = epsilon; c.stepSize = epsilon; c.steps = 1; c.randomStart = false; c.loss = loss
        return try PGD(config: c)
    }

    // MARK: the variant hooks

    func randomStart(_ adv: Tensor, _ x: Tensor, streams: inout [SeededRandom]) {
        let n = x.shape[0], per = x.count / max(n, 1), e = config.epsilon
        var d = [Float](repeating: 0, count: config.norm == .l2 ? per : 0)
        for r in 0..<n {
            let b = r * per
            switch config.norm {
            case .linf:
                for i in b..<(b + per) { adv.data[i] = x.data[i] + e * (2 * streams[r].uniform() - 1) }
            case .l2:
                d.withUnsafeMutableBufferPointer { streams[r].fillNormal($0.baseAddress!, count: per) }
                var s: Float = 0
                for i in 0..<per { s += d[i] * d[i] }
                let scale = e * streams[r].uniform() / max(s.squareRoot(), 1e-12)
                for i in 0..<per { adv.data[b + i] = x.data[b + i] + d[i] * scale }
            }
        }
        Projection.project(adv, around: x, norm: config.norm, epsilon: e)
    }

    /// adv += α · direction(g) for the rows in `active` (g ascends the attack objective).
    func step(_ adv: Tensor, _ g: Tensor, active: [Bool]) {
        for r in 0..<adv.shape[0] where active[r] {
            Projection.addStep(adv, row: r, gradient: g, stepSize: config.stepSize, norm: config.norm)
        }
    }

    // MARK: the loop

    /// d(objective)/d(logits): the attacker ascends CE(y) / margin(y) (untargeted) or descends
    /// CE(t) / ascends the target's margin (targeted).
    func objectiveGradient(_ z: Tensor, labels: [Int], targets: [Int]?) throws -> Tensor {
        let d = Tensor(shape: z.shape)
        let ones = Array(repeating: Float(1), count: z.shape[0])
        switch (config.loss, targets) {
        case (.ce, nil): try Losses.addCrossEntropyGradient(d, logits: z, labels: labels, weights: ones)
        case let (.ce, t?): try Losses.addCrossEntropyGradient(d, logits: z, labels: t, weights: ones.map { -$0 })
        case (.margin, nil): Losses.addMarginGradient(d, logits: z, labels: labels, weights: ones)
        case let (.margin, t?): Losses.addMarginGradient(d, logits: z, labels: t, weights: ones.map { -$0 })
        }
        return d
    }

    static func broken(_ z: Tensor, labels: [Int], targets: [Int]?) -> [Bool] {
        let pred = z.argmaxRows()
        if let t = targets { return zip(pred, t).map { $0 == $1 } }
        return zip(pred, labels).map { $0 != $1 }
    }

    public func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int]?, streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
        if config.targeted && targets == nil {
            throw JEMError.invalidArgument("a targeted attack needs target labels")
        }
        // ε = 0: the ball is {x}; no gradient pass can change that.
        if config.epsilon == 0 { return x.copy() }
        let n = x.shape[0], per = x.count / max(n, 1)
        let tgt = config.targeted ? targets : nil
        let best = x.copy()
        var done = [Bool](repeating: false, count: n)
        for restart in 0..<config.restarts {
            if config.earlyStop && !done.contains(false) { break }
            let adv = x.copy()
            if config.randomStart { randomStart(adv, x, streams: &streams) }
            let active = config.earlyStop ? done.map { !$0 } : [Bool](repeating: true, count: n)
            for s in 0..<config.steps {
                AttackProgress.report(Double(restart * config.steps + s) / Double(config.restarts * config.steps))
                let (z, g) = try model.inputGradient(adv, rng: &modelRng) { try objectiveGradient($0, labels: labels, targets: tgt) }
                // Every iterate is a candidate, except the clean input itself.
                if !model.isStochastic && (s > 0 || config.randomStart) { record(adv, z, labels: labels, targets: tgt, best: best, done: &done, per: per) }
                step(adv, g, active: config.earlyStop ? done.map { !$0 } : active)
                Projection.project(adv, around: x, norm: config.norm, epsilon: config.epsilon)
            }
            let z = try model.logits(adv, rng: &modelRng)
            record(adv, z, labels: labels, targets: tgt, best: best, done: &done, per: per)
            // Examples never broken keep the last restart's final iterate.
            if restart == config.restarts - 1 || (config.earlyStop && !done.contains(false)) {
                for r in 0..<n where !done[r] { (best.data + r * per).update(from: adv.data + r * per, count: per) }
            }
        }
        return best
    }

    /// Keeps the first breaking iterate of each example.
    func record(_ adv: Tensor, _ z: Tensor, labels: [Int], targets: [Int]?, best: Tensor, done: inout [Bool], per: Int) {
        for (r, b) in PGD.broken(z, labels: labels, targets: targets).enumerated() where b && !done[r] {
            done[r] = true
            (best.data + r * per).update(from: adv.data + r * per, count: per)
        }
    }
}
