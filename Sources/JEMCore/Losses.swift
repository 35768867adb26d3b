// Losses.swift: the JEM's readings of a logits tensor (N, K) and the gradients they seed:
// logsumexp (log p(x) up to log Z, = −E(x)), softmax (p(y|x)), cross-entropy, energy E(x, y).
import CJEMKernels

public enum Losses {
    /// logsumexp_y f(x)[y] per row.
    public static func logsumexp(_ logits: Tensor) -> [Float] {
        let (n, k) = (logits.shape[0], logits.shape[1])
        var out = [Float](repeating: 0, count: n)
        jem_logsumexp_forward(&out, logits.data, Int32(n), Int32(k))
        return out
    }

    /// dlogits += weights[n] · softmax(logits)[n, :].
    public static func addLogsumexpGradient(_ dlogits: Tensor, logits: Tensor, weights: [Float]) {
        jem_logsumexp_backward(dlogits.data, weights, logits.data, Int32(logits.shape[0]), Int32(logits.shape[1]))
    }

    /// −log p(y|x) per row.
    public static func crossEntropy(_ logits: Tensor, labels: [Int]) throws -> [Float] {
        let (n, k) = (logits.shape[0], logits.shape[1])
        try checkLabels(labels, n: n, k: k)
        var out = [Float](repeating: 0, count: n)
        let l32 = labels.map { Int32($0) }
        jem_softmax_xent_forward(&out, logits.data, l32, Int32(n), Int32(k))
        return out
    }

    /// dlogits += weights[n] · (softmax − onehot(label)).
    public static func addCrossEntropyGradient(_ dlogits: Tensor, logits: Tensor, labels: [Int], weights: [Float]) throws {
        let (n, k) = (logits.shape[0], logits.shape[1])
        try checkLabels(labels, n: n, k: k)
        let l32 = labels.map { Int32($0) }
        jem_softmax_xent_backward(dlogits.data, weights, logits.data, l32, Int32(n), Int32(k))
    }

    /// softmax over the last axis.
    public static func softmax(_ logits: Tensor) -> Tensor {
        let (n, k) = (logits.shape[0], logits.shape[1])
        let lse = logsumexp(logits)
        let out = Tensor(shape: [n, k])
        for i in 0..<n { for j in 0..<k { out.data[i * k + j] = expf(logits.data[i * k + j] - lse[i]) } }
        return out
    }

    /// Margin (CW) loss per row: max_{j≠y} z_j − z_y.
    public static func margin(_ logits: Tensor, labels: [Int]) -> [Float] {
        let k = logits.shape[1]
        return labels.enumerated().map { i, y in
            var best = -Float.infinity
            for j in 0..<k where j != y { best = max(best, logits.data[i * k + j]) }
            return best - logits.data[i * k + y]
        }
    }

    /// dlogits += weights[n] · ∂margin/∂z.
    public static func addMarginGradient(_ dlogits: Tensor, logits: Tensor, labels: [Int], weights: [Float]) {
        let k = logits.shape[1]
        for (i, y) in labels.enumerated() {
            var best = -Float.infinity, arg = 0
            for j in 0..<k where j != y && logits.data[i * k + j] > best { best = logits.data[i * k + j]; arg = j }
            dlogits.data[i * k + arg] += weights[i]
            dlogits.data[i * k + y] -= weights[i]
        }
    }

    static func checkLabels(_ labels: [Int], n: Int, k: Int) throws {
        guard labels.count == n else {
            throw JEMError.shapeMismatch(what: "labels", expected: [n], found: [labels.count])
        }
        if let bad = labels.first(where: { $0 < 0 || $0 >= k }) {
            throw JEMError.invalidArgument("label \(bad) is out of range for a model with \(k) classes")
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
