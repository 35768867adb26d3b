// OOD.swift: out-of-distribution detection with the reference's scores (eval_wrn_ebm.py):
// px = logsumexp f(x), py = max p(y|x), pxgrad = −‖∇ logsumexp f‖₂ (the "approximate mass", the
// gradient taken in the model's normalised input space as in the reference); AUROC (ties count
// half), AUPR and FPR at 95 % TPR with the in-distribution set positive; and the built-in OOD sets.
import Foundation
import JEMCore

public enum OODScore: String, Codable, CaseIterable, Sendable {
    case px, py, pxgrad
}

public enum BuiltinOOD: String, CaseIterable, Sendable {
    case uniform, gaussian, constant, permuted, flipped, interp

    /// A set of `n` images shaped like `reference` (N, C, H, W), seeded.
    public func make(from reference: Tensor, count n: Int, rng: inout SeededRandom) -> Tensor {
        let (c, h, w) = (reference.shape[1], reference.shape[2], reference.shape[3])
        let per = c * h * w, m = reference.shape[0]
        let x = Tensor(shape: [n, c, h, w])
        switch self {
        case .uniform: rng.fillUniform(x, lo: 0, hi: 1)
        case .gaussian:
            rng.fillNormal(x, std: 0.5)
            for i in 0..<x.count { x.data[i] = min(max(x.data[i] + 0.5, 0), 1) }
        case .constant:
            for i in 0..<n { for k in 0..<c { let v = rng.uniform(); for j in 0..<(h * w) { x.data[(i * c + k) * h * w + j] = v } } }
        case .permuted:
            for i in 0..<n {
                let src = Int(rng.next() % UInt64(m)), perm = rng.permutation(h * w)
                for k in 0..<c { for j in 0..<(h * w) { x.data[(i * c + k) * h * w + j] = reference.data[src * per + k * h * w + perm[j]] } }
            }
        case .flipped:
            for i in 0..<n {
                let src = i % m
                for k in 0..<c { for r in 0..<h { for q in 0..<w {
                    x.data[((i * c + k) * h + r) * w + q] = reference.data[src * per + (k * h + (h - 1 - r)) * w + q]
                } } }
            }
        case .interp:
            for i in 0..<n {
                let a = Int(rng.next() % UInt64(m)), b = Int(rng.next() % UInt64(m))
                for j in 0..<per { x.data[i * per + j] = 0.5 * (reference.data[a * per + j] + reference.data[b * per + j]) }
            }
        }
        return x
    }
}

public struct DetectionMetrics: Codable, Sendable {
    public var auroc: Double
    public var aupr: Double
    public var fpr_at_95_tpr: Double
}

public enum OOD {
    /// Scores of every image, in batches.
    public static func scores(_ model: any Network, _ x: Tensor, score: OODScore, batchSize: Int = 256) throws -> [Float] {
        var out: [Float] = []
        var s = 0
        while s < x.shape[0] {
            let m = min(batchSize, x.shape[0] - s)
            let xb = x.rows(s, m)
            switch score {
            case .px: out += try model.logDensity(xb)
            case .py:
                let p = try model.probabilities(xb), k = p.shape[1]
                out += (0..<m).map { i in (0..<k).map { p.data[i * k + $0] }.max()! }
            case .pxgrad:
                let g = try model.logDensityGradient(xb).gradient
                let per = g.count / m, hw = x.shape[2] * x.shape[3], c = x.shape[1]
                out += (0..<m).map { i in
                    var ss: Double = 0
                    for j in 0..<per {
                        let v = Double(g.data[i * per + j] * model.inputScale[(j / hw) % c])
                        ss += v * v
                    }
                    return -Float(ss.squareRoot())
                }
            }
            s += m
        }
        return out
    }

    /// AUROC (P(in > out) + ½ P(in = out)), AUPR with the in-distribution set positive, and the
    /// fraction of OOD scores at or above the threshold that keeps 95 % of in-distribution scores.
    public static func metrics(inScores: [Float], outScores: [Float]) -> DetectionMetrics {
        let all = (inScores.map { ($0, true) } + outScores.map { ($0, false) }).sorted { $0.0 < $1.0 }
        // Mann–Whitney U with average ranks for ties.
        var rankSumIn = 0.0
        var i = 0
        while i < all.count {
            var j = i
            while j + 1 < all.count && all[j + 1].0 == all[i].0 { j += 1 }
            let avg = Double(i + j) / 2 + 1
            for t in i...j where all[t].1 { rankSumIn += avg }
            i = j + 1
        }
        let nIn = Double(inScores.count), nOut = Double(outScores.count)
        let auroc = (rankSumIn - nIn * (nIn + 1) / 2) / max(nIn * nOut, 1)
        // Average precision, descending score, ties grouped.
        let desc = all.reversed().map { $0 }
        var tp = 0.0, fp = 0.0, ap = 0.0, prevRecall = 0.0
        var k = 0
        while k < desc.count {
            var j = k
            while j + 1 < desc.count && desc[j + 1].0 == desc[k].0 { j += 1 }
            for t in k...j { if desc[t].1 { tp += 1 } else { fp += 1 } }
            let recall = tp / max(nIn, 1), precision = tp / max(tp + fp, 1)
            ap += (recall - prevRecall) * precision
            prevRecall = recall
            k = j + 1
        }
        let sortedIn = inScores.sorted()
        let thr = sortedIn.isEmpty ? 0 : sortedIn[Int((0.05 * nIn).rounded(.down))]
        let fpr = Double(outScores.filter { $0 >= thr }.count) / max(nOut, 1)
        return DetectionMetrics(auroc: auroc, aupr: ap, fpr_at_95_tpr: fpr)
    }
}
