// Square.swift: the Square attack (Andriushchenko et al., ECCV 2020), score-based and
// gradient-free: random square-shaped updates at the vertices of the L∞ ball (or localised
// L2-normalised bumps), accepted when they lower the margin z_y − max_{j≠y} z_j. It needs logits
// only, so it is AutoAttack's control for gradient masking. The window side follows the published
// schedule of p (p_init halved at queries 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 of a
// 10 000-query run): AutoAttack keeps those query numbers at its budget of 5000; the Square paper's
// code (and torchattacks' default) stretches them to the budget, which a small budget needs, since
// otherwise its windows never shrink (rescaleSchedule). Every
// random choice is per example (the reference draws one window per batch), so a result does not
// depend on the batch.
import Foundation
import JEMCore

public struct SquareConfig: Codable, Equatable, Sendable {
    public var norm: ThreatNorm = .linf
    public var epsilon: Float = 8.0 / 255
    public var queries: Int = 5000
    public var pInit: Float = 0.8
    /// Stretch p's schedule to the query budget (query i counts as i / queries · 10 000), as the
    /// Square paper's code does; false keeps the query numbers fixed, as AutoAttack's standard version does.
    public var rescaleSchedule = false

    public init() {}

    public func validate() throws {
        guard epsilon.isFinite, epsilon > 0 else { throw JEMError.invalidArgument("--eps must be positive for Square, got \(epsilon)") }
        guard queries >= 1 else { throw JEMError.invalidArgument("--n-queries must be ≥ 1, got \(queries)") }
        guard pInit > 0, pInit <= 1 else { throw JEMError.invalidArgument("--p-init must be in (0, 1], got \(pInit)") }
    }

    /// The fraction of pixels the window covers at query i.
    public func p(at i: Int) -> Float {
        let cuts = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
        let it = rescaleSchedule ? Int(Double(i) / Double(queries) * 10_000) : i
        let halvings = cuts.filter { it > $0 }.count
        return pInit / Float(1 << halvings)
    }
}

public struct Square: ExampleAttack {
    public let config: SquareConfig
    public var norm: ThreatNorm { config.norm }
    public var epsilon: Float { config.epsilon }
    public var name: String { "square" }

    public init(config: SquareConfig) { self.config = config }

    /// Bumped when Square's proposals change (2: an L∞ window that would not change is drawn again,
    /// and the defense's Square stretches p's schedule; 2026-11-29). Runs that include Square put it
    /// in their --state fingerprint, so a state holding points of an older Square is refused.
    public static let revision = "2"

    /// Margin z_y − max_{j≠y} z_j per row (≤ 0: misclassified).
    static func margins(_ z: Tensor, labels: [Int]) -> [Float] {
        let k = z.shape[1]
        return labels.enumerated().map { r, y in
            var o = -Float.infinity
            for j in 0..<k where j != y { o = max(o, z.data[r * k + j]) }
            return z.data[r * k + y] - o
        }
    }

    static func randomInt(_ upper: Int, _ rng: inout SeededRandom) -> Int {
        upper <= 0 ? 0 : min(Int(rng.uniform() * Float(upper)), upper - 1)
    }

    static func sign(_ rng: inout SeededRandom) -> Float { rng.uniform() < 0.5 ? -1 : 1 }

    public func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
        try config.validate()
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], per = c * h * w, eps = config.epsilon
        let best = x.copy()
        // Initialisation: vertical stripes of ±ε (L∞), or a grid of ±bumps scaled to ε (L2).
        for r in 0..<n {
            let b = r * per
            switch norm {
            case .linf:
                for ch in 0..<c {
                    for col in 0..<w {
                        let s = eps * Square.sign(&streams[r])
                        for row in 0..<h { let i = b + (ch * h + row) * w + col; best.data[i] = min(max(x.data[i] + s, 0), 1) }
                    }
                }
            case .l2:
                var delta = [Float](repeating: 0, count: per)
                let s = max(h / 5, 1), start = max((h - s * 5) / 2, 0)
                var vh = start
                for _ in 0..<(h / s) {
                    var vw = start
                    for _ in 0..<(w / s) {
                        let bump = Square.bump(s, &streams[r])
                        for ch in 0..<c {
                            let sg = Square.sign(&streams[r])
                            for i in 0..<s where vh + i < h { for j in 0..<s where vw + j < w { delta[(ch * h + vh + i) * w + vw + j] += bump[i * s + j] * sg } }
                        }
                        vw += s
                    }
                    vh += s
                }
                let nrm = delta.reduce(0) { $0 + $1 * $1 }.squareRoot() + 1e-12
                for i in 0..<per { best.data[b + i] = min(max(x.data[b + i] + delta[i] / nrm * eps, 0), 1) }
            }
        }
        var margin = Square.margins(try model.logits(best, rng: &modelRng), labels: labels)
        var loss = margin
        var active = (0..<n).filter { margin[$0] > 0 }
        let cand = Tensor(shape: x.shape)
        for q in 0..<config.queries {
            if active.isEmpty { break }
            AttackProgress.report(Double(q) / Double(config.queries))
            let p = config.p(at: q)
            for r in active {
                let b = r * per
                (cand.data + b).update(from: best.data + b, count: per)
                switch norm {
                case .linf:
                    let s = min(max(Int((p * Float(per / c)).squareRoot().rounded()), 1), min(h, w))
                    let vh = Square.randomInt(h - s, &streams[r]), vw = Square.randomInt(w - s, &streams[r])
                    // Each channel's window goes to one vertex, x ± ε (clipped to the box); as in the
                    // reference, the signs are drawn again while the window would not change at all
                    // (with one channel and a 1×1 window, half the queries would otherwise be wasted).
                    // One of the two vertices always differs from the current point, so this ends;
                    // the cap only guards against a broken random stream.
                    var changed = false, draws = 0
                    while !changed && draws < 1000 {
                        draws += 1
                        for ch in 0..<c {
                            let v = 2 * eps * Square.sign(&streams[r])
                            for i in vh..<(vh + s) {
                                for j in vw..<(vw + s) {
                                    let k = b + (ch * h + i) * w + j
                                    cand.data[k] = min(max(best.data[k] + v, max(x.data[k] - eps, 0)), min(x.data[k] + eps, 1))
                                    if abs(cand.data[k] - best.data[k]) >= 1e-7 { changed = true }
                                }
                            }
                        }
                    }
                case .l2:
                    l2Proposal(x, best: best, into: cand, row: r, p: p, rng: &streams[r])
                }
            }
            let xs = active.count == n ? cand : cand.gather(rows: active)
            let mNew = Square.margins(try modelRng.rows(active) { try model.logits(xs, rng: &$0) }, labels: active.map { labels[$0] })
            for (j, r) in active.enumerated() {
                let improved = mNew[j] < loss[r]
                if improved { loss[r] = mNew[j] }
                if improved || mNew[j] <= 0 {
                    margin[r] = mNew[j]
                    (best.data + r * per).update(from: cand.data + r * per, count: per)
                }
            }
            active = active.filter { margin[$0] > 0 }
        }
        return best
    }

    /// The L2 proposal: a new bump in window 1 (keeping window 1's old perturbation direction), window 2
    /// cleared, the budget freed by the clearing moved into window 1, then the whole perturbation
    /// rescaled to ε.
    func l2Proposal(_ x: Tensor, best: Tensor, into cand: Tensor, row r: Int, p: Float, rng: inout SeededRandom) {
        let c = x.shape[1], h = x.shape[2], w = x.shape[3], per = c * h * w, b = r * per, eps = config.epsilon
        var s = max(Int((p * Float(per / c)).squareRoot().rounded()), 3)
        if s % 2 == 0 { s += 1 }
        s = min(s, min(h, w))
        let vh = Square.randomInt(h - s, &rng), vw = Square.randomInt(w - s, &rng)
        let vh2 = Square.randomInt(h - s, &rng), vw2 = Square.randomInt(w - s, &rng)
        var delta = (0..<per).map { best.data[b + $0] - x.data[b + $0] }
        func inWin(_ i: Int, _ j: Int, _ ph: Int, _ pw: Int) -> Bool { i >= ph && i < ph + s && j >= pw && j < pw + s }
        var normImage: Float = 0, normWindows: Float = 0
        for ch in 0..<c { for i in 0..<h { for j in 0..<w {
            let v = delta[(ch * h + i) * w + j]
            normImage += v * v
            if inWin(i, j, vh, vw) || inWin(i, j, vh2, vw2) { normWindows += v * v }
        } } }
        normImage = normImage.squareRoot()
        let bump = Square.bump(s, &rng)
        let budget = (max(eps * eps - normImage * normImage, 0) / Float(c) + normWindows).squareRoot()
        var fresh = [[Float]](repeating: [], count: c)
        for ch in 0..<c {
            var n1: Float = 0
            for i in 0..<s { for j in 0..<s { let v = delta[(ch * h + vh + i) * w + vw + j]; n1 += v * v } }
            n1 = n1.squareRoot()
            let sg = Square.sign(&rng)
            var nd = [Float](repeating: 0, count: s * s)
            for i in 0..<s { for j in 0..<s { nd[i * s + j] = bump[i * s + j] * sg + delta[(ch * h + vh + i) * w + vw + j] / (1e-12 + n1) } }
            let nn = nd.reduce(0) { $0 + $1 * $1 }.squareRoot()
            fresh[ch] = nd.map { $0 / (1e-12 + nn) * budget }
        }
        for ch in 0..<c {
            for i in 0..<s { for j in 0..<s { delta[(ch * h + vh2 + i) * w + vw2 + j] = 0 } }
            for i in 0..<s { for j in 0..<s { delta[(ch * h + vh + i) * w + vw + j] = fresh[ch][i * s + j] } }
        }
        let nrm = delta.reduce(0) { $0 + $1 * $1 }.squareRoot() + 1e-12
        for i in 0..<per { cand.data[b + i] = min(max(x.data[b + i] + delta[i] / nrm * eps, 0), 1) }
    }

    /// The s×s bump of the L2 attack: nested rectangles weighted 1/(k+1)², positive on the top half
    /// and negative on the bottom, unit norm, transposed with probability 1/2.
    static func bump(_ s: Int, _ rng: inout SeededRandom) -> [Float] {
        func rectangles(_ x: Int, _ y: Int) -> [Float] {
            var d = [Float](repeating: 0, count: x * y)
            let xc = x / 2 + 1, yc = y / 2 + 1
            var c0 = xc - 1, c1 = yc - 1
            for k in 0..<max(xc, yc) {
                for i in max(c0, 0)..<max(min(c0 + 2 * k + 1, x), max(c0, 0)) {
                    for j in max(c1, 0)..<max(min(c1 + 2 * k + 1, y), max(c1, 0)) { d[i * y + j] += 1 / Float((k + 1) * (k + 1)) }
                }
                c0 -= 1; c1 -= 1
            }
            let n = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return n > 0 ? d.map { $0 / n } : d
        }
        var d = [Float](repeating: 0, count: s * s)
        let top = rectangles(s / 2, s), bottom = rectangles(s - s / 2, s)
        for i in 0..<(s / 2) { for j in 0..<s { d[i * s + j] = top[i * s + j] } }
        for i in 0..<(s - s / 2) { for j in 0..<s { d[(s / 2 + i) * s + j] = -bottom[i * s + j] } }
        let n = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if n > 0 { d = d.map { $0 / n } }
        if rng.uniform() > 0.5 {
            var t = d
            for i in 0..<s { for j in 0..<s { t[j * s + i] = d[i * s + j] } }
            d = t
        }
        return d
    }
}
