// Attack.swift: the attack protocol and its entry point. `attack(...)` runs an attack's
// `perturb` and then enforces the threat model by construction: every returned example is
// projected into the ε-ball around its input and clipped to [0, 1], whatever `perturb` did.
import JEMCore

public enum ThreatNorm: String, Codable, CaseIterable, Sendable {
    case linf, l2
}

public enum AttackLoss: String, Codable, CaseIterable, Sendable {
    /// Cross-entropy.
    case ce
    /// Margin (Carlini–Wagner) loss: max_{j≠y} z_j − z_y.
    case margin
}

public protocol Attack {
    var norm: ThreatNorm { get }
    var epsilon: Float { get }
    /// Proposes adversarial examples for x (N, C, H, W) with labels y (targets when targeted).
    func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int]?, rng: inout SeededRandom) throws -> Tensor
}

extension Attack {
    /// Runs the attack and returns examples guaranteed to lie in the ε-ball around x and in [0, 1].
    public func attack(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int]? = nil, rng: inout SeededRandom) throws -> Tensor {
        guard labels.count == x.shape[0] else {
            throw JEMError.shapeMismatch(what: "attack labels", expected: [x.shape[0]], found: [labels.count])
        }
        let adv = try perturb(model, x, labels: labels, targets: targets, rng: &rng)
        guard adv.shape == x.shape else { throw JEMError.shapeMismatch(what: "attack output", expected: x.shape, found: adv.shape) }
        Projection.project(adv, around: x, norm: norm, epsilon: epsilon)
        return adv
    }
}

/// The threat model's geometry: projection onto the ε-ball ∩ [0, 1]^d, per example.
public enum Projection {
    /// Projects adv in place onto {x' : ‖x' − x‖ ≤ ε} ∩ [0, 1]^d. The identity inside the set.
    public static func project(_ adv: Tensor, around x: Tensor, norm: ThreatNorm, epsilon: Float) {
        let n = x.shape[0], per = x.count / max(n, 1)
        switch norm {
        case .linf:
            for i in 0..<(n * per) {
                let lo = max(x.data[i] - epsilon, 0), hi = min(x.data[i] + epsilon, 1)
                adv.data[i] = min(max(adv.data[i], lo), hi)
            }
        case .l2:
            for r in 0..<n {
                let b = r * per
                var s: Double = 0
                for i in b..<(b + per) { let d = Double(adv.data[i] - x.data[i]); s += d * d }
                let norm = s.squareRoot()
                if norm > Double(epsilon) {
                    // Scale slightly inside so float rounding never leaves the ball.
                    let f = Float(Double(epsilon) / norm) * (1 - 1e-6)
                    for i in b..<(b + per) { adv.data[i] = x.data[i] + (adv.data[i] - x.data[i]) * f }
                }
                for i in b..<(b + per) { adv.data[i] = min(max(adv.data[i], 0), 1) }
            }
        }
    }

    /// Per-example perturbation norms ‖adv − x‖.
    public static func norms(_ adv: Tensor, _ x: Tensor, norm: ThreatNorm) -> [Float] {
        let n = x.shape[0], per = x.count / max(n, 1)
        return (0..<n).map { r in
            var m: Float = 0, s: Double = 0
            for i in (r * per)..<((r + 1) * per) {
                let d = adv.data[i] - x.data[i]
                m = max(m, abs(d)); s += Double(d * d)
            }
            return norm == .linf ? m : Float(s.squareRoot())
        }
    }
}
