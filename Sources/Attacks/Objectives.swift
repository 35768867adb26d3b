// Objectives.swift: the per-example losses the AutoAttack components ascend, with their gradients
// with respect to the logits: cross-entropy, the difference-of-logits ratio (DLR) and its targeted
// version (Croce & Hein 2020, eq. 5 and the APGD-T variant). Values are per row; gradients are
// written, not accumulated, into a fresh (N, K) tensor.
import Foundation
import JEMCore

public enum AttackObjective: Equatable, Sendable {
    /// Cross-entropy of the true label (ascended).
    case ce
    /// DLR = −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3 + 1e-12); needs K ≥ 3.
    case dlr
    /// Targeted DLR = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12); needs K ≥ 4.
    case dlrTargeted
    /// The margin f = z_t − z_y whose zero level set FAB approaches.
    case logitDifference

    public var name: String {
        switch self { case .ce: "ce"; case .dlr: "dlr"; case .dlrTargeted: "dlr-targeted"; case .logitDifference: "logit-difference" }
    }

    /// Smallest class count the loss is defined for.
    public var minimumClasses: Int {
        switch self { case .ce, .logitDifference: 2; case .dlr: 3; case .dlrTargeted: 4 }
    }

    /// Indices of row `r`'s logits sorted in decreasing order (ties: lower index first).
    static func order(_ z: Tensor, row r: Int) -> [Int] {
        let k = z.shape[1], p = z.data + r * k
        return (0..<k).sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
    }

    /// Per-row values (the quantity the attacker maximises) and ∂value/∂z.
    /// - Parameters:
    ///   - targets: target classes, needed by `.dlrTargeted` and `.logitDifference`.
    public func evaluate(_ z: Tensor, labels: [Int], targets: [Int]?) -> (values: [Float], gradient: Tensor) {
        let n = z.shape[0], k = z.shape[1]
        let g = Tensor(shape: z.shape)
        var values = [Float](repeating: 0, count: n)
        for r in 0..<n {
            let p = z.data + r * k, d = g.data + r * k, y = labels[r]
            switch self {
            case .ce:
                var m = -Float.infinity
                for j in 0..<k { m = max(m, p[j]) }
                var s: Float = 0
                for j in 0..<k { s += expf(p[j] - m) }
                values[r] = m + logf(s) - p[y]
                for j in 0..<k { d[j] = expf(p[j] - m) / s }
                d[y] -= 1
            case .dlr:
                let o = Self.order(z, row: r)
                let other = o[0] == y ? o[1] : o[0]
                let num = p[y] - p[other], den = p[o[0]] - p[o[2]] + 1e-12
                values[r] = -num / den
                d[y] -= 1 / den; d[other] += 1 / den
                d[o[0]] += num / (den * den); d[o[2]] -= num / (den * den)
            case .dlrTargeted:
                let o = Self.order(z, row: r), t = targets![r]
                let num = p[y] - p[t], den = p[o[0]] - 0.5 * (p[o[2]] + p[o[3]]) + 1e-12
                values[r] = -num / den
                d[y] -= 1 / den; d[t] += 1 / den
                d[o[0]] += num / (den * den)
                d[o[2]] -= 0.5 * num / (den * den); d[o[3]] -= 0.5 * num / (den * den)
            case .logitDifference:
                let t = targets![r]
                values[r] = p[t] - p[y]
                d[t] += 1; d[y] -= 1
            }
        }
        return (values, g)
    }
}

