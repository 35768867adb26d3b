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
    /// Proposes adversarial examples for x (N, C, H, W) with labels y (targets when targeted). Row
    /// r's random choices come from `streams[r]` only, a stochastic model's from `modelRng`.
    func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int]?, streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor
}

extension Attack {
    /// Runs the attack and returns examples guaranteed to lie in the ε-ball around x and in [0, 1].
    public func attack(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int]? = nil, streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
        guard labels.count == x.shape[0], streams.count == x.shape[0], modelRng.count == x.shape[0] else {
            throw JEMError.shapeMismatch(what: "attack labels and streams", expected: [x.shape[0]], found: [labels.count, streams.count, modelRng.count])
        }
        let adv = try perturb(model, x, labels: labels, targets: targets, streams: &streams, modelRng: &modelRng)
        guard adv.shape == x.shape else { throw JEMError.shapeMismatch(what: "attack output", expected: x.shape, found: adv.shape) }
        Projection.project(adv, around: x, norm: norm, epsilon: epsilon)
        return adv
    }
}

/// An attack whose random choices for row r come only from `streams[r]` (the caller keys each
/// stream by example, see `ExampleStreams`), so an example's result does not depend on the batch it
/// is attacked in. The AutoAttack components conform; `modelRng` feeds a stochastic classifier.
public protocol ExampleAttack {
    /// The component's name in reports ("apgd-ce", "square", ...).
    var name: String { get }
    var norm: ThreatNorm { get }
    var epsilon: Float { get }
    /// Proposes adversarial examples for x (N, C, H, W) with true labels y.
    func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor
}

extension ExampleAttack {
    /// Runs the attack and returns examples guaranteed to lie in the ε-ball around x and in [0, 1].
    public func attack(_ model: Classifier, _ x: Tensor, labels: [Int], streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
        guard labels.count == x.shape[0], streams.count == x.shape[0], modelRng.count == x.shape[0] else {
            throw JEMError.shapeMismatch(what: "\(name) labels and streams", expected: [x.shape[0]], found: [labels.count, streams.count, modelRng.count])
        }
        let adv = try perturb(model, x, labels: labels, streams: &streams, modelRng: &modelRng)
        guard adv.shape == x.shape else { throw JEMError.shapeMismatch(what: "\(name) output", expected: x.shape, found: adv.shape) }
        Projection.project(adv, around: x, norm: norm, epsilon: epsilon)
        return adv
    }
}

/// Progress inside one attack call, for the calls that run for minutes (APGD-T's targets × steps,
/// FAB-T's, Square's queries, any attack through the SGLD defense): a caller observes the share of
/// the call's work done, in [0, 1]; the attacks report it after each step. Synchronous, on the
/// calling thread; without an observer a report costs one nil check.
public enum AttackProgress {
    nonisolated(unsafe) private static var sink: ((Double) -> Void)?

    /// Runs `body` with `handler` receiving the share done of the attack work inside it.
    public static func observe<T>(_ handler: @escaping (Double) -> Void, _ body: () throws -> T) rethrows -> T {
        let outer = sink
        sink = handler
        defer { sink = outer }
        return try body()
    }

    /// Runs `body` as the part [lo, hi] of the enclosing work (its reports are mapped into it).
    static func part<T>(_ lo: Double, _ hi: Double, _ body: () throws -> T) rethrows -> T {
        guard let outer = sink else { return try body() }
        return try observe({ outer(lo + (hi - lo) * $0) }, body)
    }

    /// Reports that the share `done` of the current work is done.
    static func report(_ done: Double) { sink?(min(max(done, 0), 1)) }
}

/// The threat model's geometry: projection onto the ε-ball ∩ [0, 1]^d and the steepest-ascent
/// step of each norm, per example. PGD and APGD both step and project through these.
public enum Projection {
    /// Projects adv in place onto {x' : ‖x' − x‖ ≤ ε} ∩ [0, 1]^d. The identity inside the set.
    public static func project(_ adv: Tensor, around x: Tensor, norm: ThreatNorm, epsilon: Float) {
        let n = x.shape[0]
        for r in 0..<n { project(adv, row: r, around: x, norm: norm, epsilon: epsilon) }
    }

    /// Projects row r of adv onto the ε-ball around row r of x, intersected with [0, 1]^d.
    public static func project(_ adv: Tensor, row r: Int, around x: Tensor, norm: ThreatNorm, epsilon: Float) {
        let per = x.count / max(x.shape[0], 1), b = r * per
        switch norm {
        case .linf:
            for i in b..<(b + per) {
                let lo = max(x.data[i] - epsilon, 0), hi = min(x.data[i] + epsilon, 1)
                adv.data[i] = min(max(adv.data[i], lo), hi)
            }
        case .l2:
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

    /// Row r of adv += a · direction(g): sign(g) for L∞, g/‖g‖ for L2 (steepest ascent of the norm).
    @inline(__always)
    public static func addStep(_ adv: Tensor, row r: Int, gradient g: Tensor, stepSize a: Float, norm: ThreatNorm) {
        let per = adv.count / max(adv.shape[0], 1), b = r * per
        let g = g.data + b
        switch norm {
        case .linf:
            for i in 0..<per { let v = g[i]; adv.data[b + i] += v > 0 ? a : (v < 0 ? -a : 0) }
        case .l2:
            var s: Float = 0
            for i in 0..<per { s += g[i] * g[i] }
            let f = a / max(s.squareRoot(), 1e-12)
            for i in 0..<per { adv.data[b + i] += g[i] * f }
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
