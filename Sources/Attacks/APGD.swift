// APGD.swift: Auto-PGD (Croce & Hein, ICML 2020, Algorithm 1), the white-box core of AutoAttack.
// A PGD loop without a step-size to tune: the step starts at 2ε and halves at checkpoints
// p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) (fractions of the budget)
// when the loss oscillated (it rose in at most ρ = 0.75 of the steps since the last checkpoint) or
// when the best loss did not improve and the step was not just halved; after halving, the
// iterate restarts from the best point. Momentum 0.75 (none on the first step). Losses: CE, DLR,
// and targeted DLR against the 2nd..(T+1)-th most likely clean classes (APGD-T). Steps and
// projections are the threat model's (`Projection`), the same ones PGD uses.
//
// An example stops being attacked once it is misclassified (deterministic models): its result is
// already decided, and the rest of the batch runs exactly as it would have with it.
import Foundation
import JEMCore

public enum APGDLoss: String, Codable, CaseIterable, Sendable {
    case ce, dlr
    /// Targeted DLR over the top `targetClasses` wrong classes (APGD-T).
    case dlrTargeted = "dlr-targeted"
}

public struct APGDConfig: Codable, Equatable, Sendable {
    public var norm: ThreatNorm = .linf
    public var epsilon: Float = 8.0 / 255
    public var steps: Int = 100
    public var restarts: Int = 1
    public var loss: APGDLoss = .ce
    /// APGD-T: how many target classes (by clean logit rank, from the 2nd) are tried in turn.
    public var targetClasses: Int = 9
    /// Expectation over transformation: gradients averaged over this many draws of the model's randomness.
    public var eot: Int = 1
    /// The oscillation threshold ρ.
    public var rho: Float = 0.75
    public var momentum: Float = 0.75

    public init() {}

    public func validate(classes: Int) throws {
        guard epsilon.isFinite, epsilon > 0 else { throw JEMError.invalidArgument("--eps must be positive for APGD, got \(epsilon)") }
        if norm == .linf && epsilon > 1 { throw JEMError.invalidArgument("--eps \(epsilon) is above 1, the whole pixel range, for L∞") }
        guard steps >= 1 else { throw JEMError.invalidArgument("--n-iter must be ≥ 1 for APGD, got \(steps)") }
        guard restarts >= 1 else { throw JEMError.invalidArgument("--restarts must be ≥ 1, got \(restarts)") }
        guard eot >= 1 else { throw JEMError.invalidArgument("--eot must be ≥ 1, got \(eot)") }
        let need = loss == .ce ? 2 : (loss == .dlr ? 3 : 4)
        guard classes >= need else {
            throw JEMError.invalidArgument("APGD with the \(loss.rawValue) loss needs at least \(need) classes; the model has \(classes)")
        }
        if loss == .dlrTargeted {
            guard targetClasses >= 1, targetClasses <= classes - 1 else {
                throw JEMError.invalidArgument("--n-target-classes must be in 1...\(classes - 1) for a \(classes)-class model, got \(targetClasses)")
            }
        }
    }

    /// The step-size checkpoints as iteration indices at which the conditions are checked.
    public var checkpoints: [Int] {
        let n2 = max(Int(0.22 * Double(steps)), 1), nMin = max(Int(0.06 * Double(steps)), 1), decr = max(Int(0.03 * Double(steps)), 1)
        var out: [Int] = [], k = n2, i = k - 1
        while i < steps { out.append(i); k = max(k - decr, nMin); i += k }
        return out
    }

    public var summary: String {
        let e = norm == .linf ? String(format: "%.4f (%.1f/255)", epsilon, epsilon * 255) : String(format: "%.4f", epsilon)
        let t = loss == .dlrTargeted ? ", \(targetClasses) target classes" : ""
        return "APGD-\(loss.rawValue) \(norm == .linf ? "L∞" : "L2") ε=\(e), \(steps) steps, \(restarts) restart(s)\(t), EOT \(eot)"
    }
}

public struct APGD: ExampleAttack {
    public let config: APGDConfig
    public var norm: ThreatNorm { config.norm }
    public var epsilon: Float { config.epsilon }
    public var name: String {
        switch config.loss { case .ce: "apgd-ce"; case .dlr: "apgd-dlr"; case .dlrTargeted: "apgd-t" }
    }

    public init(config: APGDConfig) { self.config = config }

    var objective: AttackObjective {
        switch config.loss { case .ce: .ce; case .dlr: .dlr; case .dlrTargeted: .dlrTargeted }
    }

    public func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
        try config.validate(classes: model.numClasses)
        let n = x.shape[0]
        let out = x.copy()
        var done = [Bool](repeating: false, count: n)
        // APGD-T's targets: the clean logits' ranks 2, 3, ... (as in the reference implementation).
        var ranked: [[Int]] = []
        if config.loss == .dlrTargeted {
            let z = try model.logits(x, rng: &modelRng)
            ranked = (0..<n).map { AttackObjective.order(z, row: $0) }
        }
        let rounds = config.loss == .dlrTargeted ? Array(1...config.targetClasses) : [0]
        let parts = Double(rounds.count * config.restarts)
        for (k, rank) in rounds.enumerated() {
            for restart in 0..<config.restarts {
                let rows = (0..<n).filter { !done[$0] }
                if rows.isEmpty { return out }
                let targets = config.loss == .dlrTargeted ? rows.map { ranked[$0][rank] } : nil
                var sub = rows.map { streams[$0] }
                let part = Double(k * config.restarts + restart)
                let (adv, broken) = try AttackProgress.part(part / parts, (part + 1) / parts) {
                    try modelRng.rows(rows) {
                        try run(model, x.gather(rows: rows), labels: rows.map { labels[$0] }, targets: targets, streams: &sub, modelRng: &$0)
                    }
                }
                let per = x.count / max(n, 1)
                for (j, r) in rows.enumerated() {
                    streams[r] = sub[j]
                    // A broken example keeps its misclassified point; an unbroken one the last run's.
                    (out.data + r * per).update(from: adv.data + j * per, count: per)
                    if broken[j] { done[r] = true }
                }
            }
        }
        return out
    }

    /// The step-size rule at a checkpoint. `window` holds the losses of the k + 1 iterations up to
    /// this checkpoint (the first is the one before the window; 0 before the first step). Halve
    /// when the loss rose in at most ρ·k of the k steps (condition 1), or when the step was not
    /// halved at the last checkpoint and the best loss has not improved since (condition 2).
    public static func shouldHalve(window: [Float], rho: Float, reducedLastCheck: Bool, bestAtLastCheck: Float, best: Float) -> Bool {
        let k = window.count - 1
        var rises = 0
        for c in 0..<k where window[c + 1] > window[c] { rises += 1 }
        let oscillating = Float(rises) <= Float(k) * rho
        let stalled = !reducedLastCheck && bestAtLastCheck >= best
        return oscillating || stalled
    }

    /// One APGD run on every row. Returns the misclassified iterate for broken rows and the
    /// highest-loss point for the others, and which rows were broken.
    func run(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int]?, streams: inout [SeededRandom],
             modelRng: inout RowStreams) throws -> (Tensor, [Bool]) {
        let m = x.shape[0], per = x.count / max(m, 1), eps = config.epsilon
        let stochastic = model.isStochastic
        // Random start on the sphere of radius ε (L∞: uniform noise rescaled to max |δ| = ε).
        let xAdv = x.copy()
        for r in 0..<m {
            var noise = [Float](repeating: 0, count: per)
            var scale: Float = 0
            switch norm {
            case .linf:
                for i in 0..<per { noise[i] = 2 * streams[r].uniform() - 1; scale = max(scale, abs(noise[i])) }
            case .l2:
                let t = Tensor(shape: [per]); streams[r].fillNormal(t)
                for i in 0..<per { noise[i] = t.data[i]; scale += noise[i] * noise[i] }
                scale = scale.squareRoot() + 1e-12
            }
            let f = eps / max(scale, 1e-12)
            for i in 0..<per { xAdv.data[r * per + i] = min(max(x.data[r * per + i] + noise[i] * f, 0), 1) }
        }
        var broken = [Bool](repeating: false, count: m)
        let bestAdv = xAdv.copy()
        let all = Array(0..<m)

        // Gradient (averaged over EOT draws), loss and predictions at rows `rows` of xAdv.
        func evaluate(_ rows: [Int]) throws -> (loss: [Float], grad: Tensor, pred: [Int]) {
            let xs = rows.count == m ? xAdv : xAdv.gather(rows: rows)
            let ys = rows.map { labels[$0] }, ts = targets.map { t in rows.map { t[$0] } }
            var lossSum = [Float](repeating: 0, count: rows.count)
            var gSum: Tensor? = nil, pred: [Int] = []
            for _ in 0..<config.eot {
                var values: [Float] = []
                let (z, g) = try modelRng.rows(rows) {
                    try model.inputGradient(xs, rng: &$0) { z in
                        let e = objective.evaluate(z, labels: ys, targets: ts)
                        values = e.values
                        return e.gradient
                    }
                }
                for j in 0..<rows.count { lossSum[j] += values[j] }
                if let s = gSum { for i in 0..<s.count { s.data[i] += g.data[i] } } else { gSum = g }
                pred = z.argmaxRows()
            }
            let g = gSum!
            if config.eot > 1 {
                let inv = 1 / Float(config.eot)
                for i in 0..<g.count { g.data[i] *= inv }
                for j in 0..<rows.count { lossSum[j] *= inv }
            }
            return (lossSum, g, pred)
        }

        let grad = Tensor(shape: x.shape)
        var active = all
        func absorb(_ rows: [Int], _ e: (loss: [Float], grad: Tensor, pred: [Int]), lossNow: inout [Float]) {
            for (j, r) in rows.enumerated() {
                (grad.data + r * per).update(from: e.grad.data + j * per, count: per)
                lossNow[r] = e.loss[j]
                if e.pred[j] != labels[r] {
                    broken[r] = true
                    (bestAdv.data + r * per).update(from: xAdv.data + r * per, count: per)
                }
            }
        }
        var lossNow = [Float](repeating: 0, count: m)
        absorb(all, try evaluate(all), lossNow: &lossNow)
        if !stochastic { active = all.filter { !broken[$0] } }

        let xBest = xAdv.copy(), gradBest = grad.copy()
        var lossBest = lossNow, lossBestLastCheck = lossNow
        var reducedLastCheck = [Bool](repeating: true, count: m)
        var stepSize = [Float](repeating: 2 * eps, count: m)
        let xOld = xAdv.copy()
        var lossSteps = [[Float]](repeating: [Float](repeating: 0, count: m), count: config.steps)
        let checkpoints = config.checkpoints
        let cand = Tensor(shape: x.shape)

        for i in 0..<config.steps {
            if active.isEmpty { break }
            AttackProgress.report(Double(i) / Double(config.steps))
            let a: Float = i > 0 ? config.momentum : 1
            for r in active {
                let b = r * per
                // z = P(x_k + η·dir(∇)); x_{k+1} = P(x_k + a(z − x_k) + (1 − a)(x_k − x_{k−1})).
                (cand.data + b).update(from: xAdv.data + b, count: per)
                Projection.addStep(cand, row: r, gradient: grad, stepSize: stepSize[r], norm: norm)
                Projection.project(cand, row: r, around: x, norm: norm, epsilon: eps)
                for t in b..<(b + per) {
                    let cur = xAdv.data[t]
                    cand.data[t] = cur + a * (cand.data[t] - cur) + (1 - a) * (cur - xOld.data[t])
                    xOld.data[t] = cur
                }
                Projection.project(cand, row: r, around: x, norm: norm, epsilon: eps)
                (xAdv.data + b).update(from: cand.data + b, count: per)
            }
            absorb(active, try evaluate(active), lossNow: &lossNow)
            for r in active {
                lossSteps[i][r] = lossNow[r]
                if lossNow[r] > lossBest[r] {
                    lossBest[r] = lossNow[r]
                    (xBest.data + r * per).update(from: xAdv.data + r * per, count: per)
                    (gradBest.data + r * per).update(from: grad.data + r * per, count: per)
                }
            }
            if let j = checkpoints.firstIndex(of: i) {
                let k = j == 0 ? checkpoints[0] + 1 : checkpoints[j] - checkpoints[j - 1]
                for r in active {
                    let window = (0...k).map { c in i - k + c >= 0 ? lossSteps[i - k + c][r] : 0 }
                    let halve = APGD.shouldHalve(window: window, rho: config.rho, reducedLastCheck: reducedLastCheck[r],
                                                 bestAtLastCheck: lossBestLastCheck[r], best: lossBest[r])
                    reducedLastCheck[r] = halve
                    lossBestLastCheck[r] = lossBest[r]
                    if halve {
                        stepSize[r] /= 2
                        (xAdv.data + r * per).update(from: xBest.data + r * per, count: per)
                        (grad.data + r * per).update(from: gradBest.data + r * per, count: per)
                    }
                }
            }
            if !stochastic { active = active.filter { !broken[$0] } }
        }
        // Unbroken rows return their highest-loss point (the best candidate for a later check).
        for r in 0..<m where !broken[r] { (bestAdv.data + r * per).update(from: xBest.data + r * per, count: per) }
        return (bestAdv, broken)
    }
}
