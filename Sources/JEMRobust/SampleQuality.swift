// SampleQuality.swift: the paper's sample-quality metrics in a classifier's feature space: the
// Fréchet distance between Gaussians fitted to two sets of penultimate-layer features (FID; here a
// domain FID, not Inception-v3's) and the Inception-style score exp(E_x KL(p(y|x) ‖ p(y))).
import Foundation
import JEMCore

/// Mean and covariance (unbiased) of a set of feature vectors.
public struct FeatureStatistics: Sendable {
    public let count: Int
    public let dimension: Int
    public let mean: [Double]
    /// D×D, row-major.
    public let covariance: [Double]

    /// Statistics of the rows of `features` (N, D), N ≥ 2.
    public init(_ features: Tensor) throws {
        guard features.shape.count == 2, features.shape[0] >= 2 else {
            throw JEMError.invalidArgument("feature statistics need at least 2 feature vectors (N×D), got \(features.shape)")
        }
        let (n, d) = (features.shape[0], features.shape[1])
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(features.data[i * d + j]) } }
        for j in 0..<d { mean[j] /= Double(n) }
        var cov = [Double](repeating: 0, count: d * d)
        var centred = [Double](repeating: 0, count: d)
        for i in 0..<n {
            for j in 0..<d { centred[j] = Double(features.data[i * d + j]) - mean[j] }
            for a in 0..<d where centred[a] != 0 {
                let ca = centred[a]
                for b in a..<d { cov[a * d + b] += ca * centred[b] }
            }
        }
        for a in 0..<d { for b in a..<d { cov[a * d + b] /= Double(n - 1); cov[b * d + a] = cov[a * d + b] } }
        count = n; dimension = d; self.mean = mean; covariance = cov
    }
}

public enum SampleQuality {
    /// ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½).
    public static func frechetDistance(_ a: FeatureStatistics, _ b: FeatureStatistics) throws -> Double {
        guard a.dimension == b.dimension else {
            throw JEMError.invalidArgument("feature dimensions differ: \(a.dimension) and \(b.dimension)")
        }
        let d = a.dimension
        var meanTerm = 0.0
        for j in 0..<d { meanTerm += (a.mean[j] - b.mean[j]) * (a.mean[j] - b.mean[j]) }
        let rootA = try symmetricSquareRoot(a.covariance, n: d)
        let m = multiply(multiply(rootA, b.covariance, n: d), rootA, n: d)
        let sym = (0..<(d * d)).map { i in 0.5 * (m[i] + m[(i % d) * d + i / d]) }
        let (values, _) = try symmetricEigen(sym, n: d)
        let traceRoot = values.reduce(0) { $0 + max($1, 0).squareRoot() }
        let trace = (0..<d).reduce(0.0) { $0 + a.covariance[$1 * d + $1] + b.covariance[$1 * d + $1] }
        return max(meanTerm + trace - 2 * traceRoot, 0)
    }

    /// exp(mean over rows of KL(p(y|x) ‖ p(y))), p(y) the mean of the rows; probabilities (N, K).
    public static func inceptionScore(probabilities p: Tensor) -> Double {
        let (n, k) = (p.shape[0], p.shape[1])
        var marginal = [Double](repeating: 0, count: k)
        for i in 0..<n { for c in 0..<k { marginal[c] += Double(p.data[i * k + c]) / Double(n) } }
        var kl = 0.0
        for i in 0..<n {
            for c in 0..<k {
                let q = Double(p.data[i * k + c])
                if q > 0 && marginal[c] > 0 { kl += q * (log(q) - log(marginal[c])) }
            }
        }
        return exp(kl / Double(max(n, 1)))
    }

    static func multiply(_ x: [Double], _ y: [Double], n: Int) -> [Double] {
        var out = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for k in 0..<n where x[i * n + k] != 0 {
            let xik = x[i * n + k]
            for j in 0..<n { out[i * n + j] += xik * y[k * n + j] }
        } }
        return out
    }

    /// V √max(Λ, 0) Vᵀ of a symmetric positive semi-definite matrix.
    static func symmetricSquareRoot(_ a: [Double], n: Int) throws -> [Double] {
        let (values, v) = try symmetricEigen(a, n: n)
        var out = [Double](repeating: 0, count: n * n)
        for k in 0..<n {
            let r = max(values[k], 0).squareRoot()
            if r == 0 { continue }
            for i in 0..<n { let vik = v[i * n + k] * r; for j in 0..<n { out[i * n + j] += vik * v[j * n + k] } }
        }
        return out
    }

    /// Eigenvalues and eigenvectors (columns of V, row-major) of a symmetric matrix by cyclic
    /// Jacobi rotations.
    public static func symmetricEigen(_ a0: [Double], n: Int) throws -> (values: [Double], vectors: [Double]) {
        guard a0.allSatisfy(\.isFinite) else { throw JEMError.invalidArgument("eigen-decomposition of a matrix with non-finite entries") }
        var a = a0
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        let total = a.reduce(0) { $0 + $1 * $1 }
        for _ in 0..<100 {
            var off = 0.0
            for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
            if off <= 1e-26 * total || off == 0 { break }
            for p in 0..<n {
                for q in (p + 1)..<n {
                    let apq = a[p * n + q]
                    if apq == 0 { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0 * n + $0] }, v)
    }
}
