// FAB.swift: the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), as AutoAttack
// runs it (FAB-T): for each of the top wrong classes t by clean logit rank, it linearises the
// logit difference f = z_t − z_y at the iterate, projects both the iterate and the clean point onto
// the hyperplane {f = 0} intersected with the box [0, 1]^d (minimal L∞ or L2 displacement), takes a
// biased, extrapolated step between the two (α ≤ α_max, overshoot η), and after each success steps
// back towards the clean point (β) to look for a smaller perturbation. An example counts as broken
// once an iterate within ε is misclassified; then it is no longer attacked.
//
// Logits for the success check after step s come from the gradient pass of step s + 1 (the same
// point), so each step costs one forward-backward pass rather than that and a separate forward.
import Foundation
import JEMCore

public struct FABConfig: Codable, Equatable, Sendable {
    public var norm: ThreatNorm = .linf
    public var epsilon: Float = 8.0 / 255
    public var steps: Int = 100
    public var targetClasses: Int = 9
    public var alphaMax: Float = 0.1
    public var eta: Float = 1.05
    public var beta: Float = 0.9

    public init() {}

    public func validate(classes: Int) throws {
        guard epsilon.isFinite, epsilon > 0 else { throw JEMError.invalidArgument("--eps must be positive for FAB, got \(epsilon)") }
        guard steps >= 1 else { throw JEMError.invalidArgument("--n-iter must be ≥ 1 for FAB, got \(steps)") }
        guard targetClasses >= 1, targetClasses <= classes - 1 else {
            throw JEMError.invalidArgument("--n-target-classes must be in 1...\(classes - 1) for a \(classes)-class model, got \(targetClasses)")
        }
    }
}

/// Minimal-norm projection onto a hyperplane within the box [0, 1]^d.
public enum BoxHyperplane {
    /// The displacement d of least ‖d‖ (L∞ or L2) with ⟨w, t + d⟩ = b and t + d ∈ [0, 1]^d. When
    /// the box cannot reach the hyperplane, the box corner that gets closest.
    /// - Parameters:
    ///   - t: the point (d values in [0, 1]).
    ///   - w: the hyperplane's normal; b its offset.
    public static func project(_ t: UnsafePointer<Float>, _ w: UnsafePointer<Float>, b: Float, count d: Int, norm: ThreatNorm,
                               into out: UnsafeMutablePointer<Float>) {
        var wt: Double = 0
        for i in 0..<d { wt += Double(w[i]) * Double(t[i]) }
        var c = Double(b) - wt          // the change of ⟨w, ·⟩ needed
        out.update(repeating: 0, count: d)
        if c == 0 { return }
        let sgn: Float = c > 0 ? 1 : -1  // move along sgn·w
        c = abs(c)
        // room[i]: how far coordinate i can move in the direction that raises sgn·⟨w, ·⟩.
        var idx: [Int] = [], room: [Double] = [], aw: [Double] = []
        idx.reserveCapacity(d)
        for i in 0..<d where w[i] != 0 {
            let up = sgn * w[i] > 0
            idx.append(i); room.append(Double(up ? 1 - t[i] : t[i])); aw.append(Double(abs(w[i])))
        }
        if idx.isEmpty { return }
        func dir(_ i: Int) -> Double { sgn * w[i] > 0 ? 1 : -1 }
        switch norm {
        case .linf:
            // f(δ) = Σ |w_i| min(δ, room_i) is concave, increasing, piecewise linear: walk its breakpoints.
            let order = room.indices.sorted { room[$0] < room[$1] }
            var saturated = 0.0, slope = aw.reduce(0, +)
            var delta = Double.infinity
            for j in order {
                if saturated + slope * room[j] >= c { delta = (c - saturated) / slope; break }
                saturated += aw[j] * room[j]; slope -= aw[j]
            }
            for (j, i) in idx.enumerated() { out[i] = Float(dir(i) * min(delta, room[j])) }
        case .l2:
            // d_i(λ) = min(λ|w_i|, room_i) along dir(i); g(λ) = Σ |w_i| d_i(λ) increases; breakpoints room_i/|w_i|.
            let bp = room.indices.map { room[$0] / aw[$0] }
            let order = bp.indices.sorted { bp[$0] < bp[$1] }
            var saturated = 0.0, slope = aw.reduce(0) { $0 + $1 * $1 }
            var lambda = Double.infinity
            for j in order {
                let g = saturated + slope * bp[j]
                if g >= c { lambda = (c - saturated) / slope; break }
                saturated += aw[j] * room[j]; slope -= aw[j] * aw[j]
            }
            for (j, i) in idx.enumerated() { out[i] = Float(dir(i) * min(lambda * aw[j], room[j])) }
        }
    }
}

public struct FAB: ExampleAttack {
    public let config: FABConfig
    public var norm: ThreatNorm { config.norm }
    public var epsilon: Float { config.epsilon }
    public var name: String { "fab-t" }

    public init(config: FABConfig) { self.config = config }

    static func distance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int, _ norm: ThreatNorm) -> Float {
        var m: Float = 0, s: Double = 0
        for i in 0..<d { let v = a[i] - b[i]; m = max(m, abs(v)); s += Double(v * v) }
        return norm == .linf ? m : Float(s.squareRoot())
    }

    public func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
        try config.validate(classes: model.numClasses)
        let n = x.shape[0], per = x.count / max(n, 1)
        let out = x.copy()
        let z0 = try model.logits(x, rng: &modelRng)
        let ranked = (0..<n).map { AttackObjective.order(z0, row: $0) }
        // Only correctly classified points are attacked (a misclassified one is broken already).
        var done = (0..<n).map { ranked[$0][0] != labels[$0] }
        let parts = Double(config.targetClasses)
        for rank in 1...config.targetClasses {
            let rows = (0..<n).filter { !done[$0] }
            if rows.isEmpty { break }
            let (adv, broken) = try AttackProgress.part(Double(rank - 1) / parts, Double(rank) / parts) {
                try modelRng.rows(rows) {
                    try run(model, x.gather(rows: rows), labels: rows.map { labels[$0] }, targets: rows.map { ranked[$0][rank] }, modelRng: &$0)
                }
            }
            for (j, r) in rows.enumerated() where broken[j] {
                done[r] = true
                (out.data + r * per).update(from: adv.data + j * per, count: per)
            }
        }
        return out
    }

    /// One FAB-T run towards `targets`; returns the smallest adversarial found per row (the clean
    /// point where none) and whether it lies within ε.
    func run(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int], modelRng: inout RowStreams) throws -> (Tensor, [Bool]) {
        let m = x.shape[0], per = x.count / max(m, 1), eps = config.epsilon
        let x1 = x.copy(), best = x.copy()
        var bestNorm = [Float](repeating: .infinity, count: m)
        var broken = [Bool](repeating: false, count: m)
        var active = Array(0..<m)
        var p1 = [Float](repeating: 0, count: per), p2 = p1

        // (f, ∇f) of f = z_t − z_y at rows `rows` of x1, and the predictions there.
        func linearise(_ rows: [Int]) throws -> (f: [Float], g: Tensor, pred: [Int]) {
            let xs = rows.count == m ? x1 : x1.gather(rows: rows)
            let ys = rows.map { labels[$0] }, ts = rows.map { targets[$0] }
            var f: [Float] = []
            let (z, g) = try modelRng.rows(rows) {
                try model.inputGradient(xs, rng: &$0) { z in
                    let e = AttackObjective.logitDifference.evaluate(z, labels: ys, targets: ts)
                    f = e.values
                    return e.gradient
                }
            }
            return (f, g, z.argmaxRows())
        }
        // Records a misclassified iterate; true when it settles the row (within ε).
        func record(_ r: Int) -> Bool {
            let dist = FAB.distance(x1.data + r * per, x.data + r * per, per, norm)
            if dist < bestNorm[r] { bestNorm[r] = dist; (best.data + r * per).update(from: x1.data + r * per, count: per) }
            if dist <= eps { broken[r] = true; return true }
            // Outside ε: step back towards the clean point and keep searching.
            for i in 0..<per { x1.data[r * per + i] = x.data[r * per + i] + (x1.data[r * per + i] - x.data[r * per + i]) * config.beta }
            return false
        }

        // Each row takes exactly `steps` steps; a row whose iterate is misclassified but outside ε
        // steps back and is linearised again in the next shared pass (rather than in a pass of its own).
        var taken = [Int](repeating: 0, count: m)
        var unchecked = [Bool](repeating: false, count: m)
        while !active.isEmpty {
            // The call lasts as long as its slowest row.
            AttackProgress.report(Double(active.reduce(0) { max($0, taken[$1]) }) / Double(config.steps))
            let lin = try linearise(active)
            var next: [Int] = []
            for (j, r) in active.enumerated() {
                if unchecked[r] {
                    // The logits at the last step's iterate decide success.
                    unchecked[r] = false
                    if lin.pred[j] != labels[r] {
                        if record(r) { continue }
                        if taken[r] < config.steps { next.append(r) }
                        continue
                    }
                }
                if taken[r] == config.steps { continue }
                let g = lin.g.data + j * per, xr = x1.data + r * per, x0 = x.data + r * per
                var gx: Double = 0
                for i in 0..<per { gx += Double(g[i]) * Double(xr[i]) }
                let b = Float(gx - Double(lin.f[j]))
                p1.withUnsafeMutableBufferPointer { BoxHyperplane.project(xr, g, b: b, count: per, norm: norm, into: $0.baseAddress!) }
                p2.withUnsafeMutableBufferPointer { BoxHyperplane.project(x0, g, b: b, count: per, norm: norm, into: $0.baseAddress!) }
                let a1 = max(FAB.norm(p1, norm), 1e-8), a2 = max(FAB.norm(p2, norm), 1e-8)
                let alpha = min(max(a1 / (a1 + a2), 0), config.alphaMax)
                for i in 0..<per {
                    let v = (xr[i] + config.eta * p1[i]) * (1 - alpha) + (x0[i] + config.eta * p2[i]) * alpha
                    xr[i] = min(max(v, 0), 1)
                }
                taken[r] += 1
                unchecked[r] = true
                next.append(r)
            }
            active = next
        }
        return (best, broken)
    }

    static func norm(_ v: [Float], _ norm: ThreatNorm) -> Float {
        if norm == .linf { return v.reduce(0) { max($0, abs($1)) } }
        return v.reduce(0) { $0 + $1 * $1 }.squareRoot()
    }
}
