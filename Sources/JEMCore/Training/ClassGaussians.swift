// ClassGaussians.swift: the JEM++ "informative" chain start: one Gaussian per class fitted to the
// training images, drawn in pixel space and clipped to [0, 1]. Used for the replay buffer of
// `train --buffer-init gaussian` and by `sample --init gaussian`.
//
// As in JEM++, the covariance is the full per-class pixel covariance (plus 1e-4·I), so draws
// carry the classes' correlated shapes rather than per-pixel speckle. Its Cholesky factor costs
// D³/3 per class, so above `fullCovarianceLimit` pixels (e.g. 3×32×32 images) the Gaussians fall
// back to a diagonal covariance.

import CJEMKernels

public struct ClassGaussians: Sendable {
    /// Largest C·H·W with a full covariance (1×32×32); larger inputs use per-pixel variances.
    public static let fullCovarianceLimit = 1024
    /// [classes, D] per-pixel means (pixel space).
    public let mean: [Float]
    /// Full covariance: [classes, D, D] lower-triangular Cholesky factors; diagonal: [classes, D] standard deviations.
    public let factor: [Float]
    public let classes: Int, pixels: Int
    public var isFull: Bool { factor.count == classes * pixels * pixels }

    /// Fits the Gaussians to every image of `data`. A class with no image gets mean 0.5, std 0.5.
    public init(fitting data: Dataset, full: Bool? = nil) {
        let d = data.channels * data.height * data.width, k = data.numClasses
        let useFull = full ?? (d <= ClassGaussians.fullCovarianceLimit)
        var byClass = [[Int]](repeating: [], count: k)
        for i in 0..<data.count { byClass[data.labels[i]].append(i) }
        var mean = [Float](repeating: 0.5, count: k * d)
        var factor = [Float](repeating: 0, count: useFull ? k * d * d : k * d)
        for y in 0..<k {
            let rows = byClass[y]
            guard !rows.isEmpty else {
                if useFull { for j in 0..<d { factor[(y * d + j) * d + j] = 0.5 } } else { for j in 0..<d { factor[y * d + j] = 0.5 } }
                continue
            }
            let n = rows.count
            // Centred data X (n × D).
            let x = Tensor(shape: [n, d])
            var m = [Double](repeating: 0, count: d)
            for (r, i) in rows.enumerated() {
                let p = data.images.data + i * d
                for j in 0..<d { x.data[r * d + j] = p[j]; m[j] += Double(p[j]) }
            }
            for j in 0..<d { m[j] /= Double(n); mean[y * d + j] = Float(m[j]) }
            for r in 0..<n { for j in 0..<d { x.data[r * d + j] -= Float(m[j]) } }
            if useFull {
                // Σ = XᵀX / n (through the GEMM of the linear layer's weight gradient), + 1e-4·I.
                let cov = Tensor(shape: [d, d])
                jem_linear_backward(nil, cov.data, nil, x.data, x.data, cov.data, Int32(n), Int32(d), Int32(d))
                var a = [Double](repeating: 0, count: d * d)
                for i in 0..<(d * d) { a[i] = Double(cov.data[i]) / Double(n) }
                let l = ClassGaussians.cholesky(a, d, jitter: 1e-4)
                for i in 0..<(d * d) { factor[y * d * d + i] = Float(l[i]) }
            } else {
                for j in 0..<d {
                    var s = 0.0
                    for r in 0..<n { let v = Double(x.data[r * d + j]); s += v * v }
                    factor[y * d + j] = Float((s / Double(n)).squareRoot())
                }
            }
        }
        self.mean = mean; self.factor = factor; classes = k; pixels = d
    }

    /// Lower-triangular L with L·Lᵀ = a + jitter·I (row-major, d × d); the jitter grows ×10 until
    /// the matrix is positive definite.
    static func cholesky(_ a: [Double], _ d: Int, jitter: Double) -> [Double] {
        var eps = jitter
        while true {
            var l = [Double](repeating: 0, count: d * d)
            var ok = true
            outer: for i in 0..<d {
                for j in 0...i {
                    var s = a[i * d + j] + (i == j ? eps : 0)
                    for t in 0..<j { s -= l[i * d + t] * l[j * d + t] }
                    if i == j {
                        guard s > 0 else { ok = false; break outer }
                        l[i * d + i] = s.squareRoot()
                    } else {
                        l[i * d + j] = s / l[j * d + j]
                    }
                }
            }
            if ok { return l }
            eps *= 10
        }
    }

    /// Writes one draw of class `label` into row `row` of t (pixels, clipped to [0, 1]).
    public func draw(into t: Tensor, row: Int, label: Int, rng: inout SeededRandom) {
        precondition(t.count / t.shape[0] == pixels && (0..<classes).contains(label))
        let d = pixels
        let z = Tensor(shape: [d]); rng.fillNormal(z)
        let p = t.data + row * d
        if isFull {
            factor.withUnsafeBufferPointer { f in
                let l = f.baseAddress! + label * d * d
                for i in 0..<d {
                    var s: Float = 0
                    for j in 0...i { s += l[i * d + j] * z.data[j] }
                    p[i] = min(max(mean[label * d + i] + s, 0), 1)
                }
            }
        } else {
            for j in 0..<d { p[j] = min(max(mean[label * d + j] + factor[label * d + j] * z.data[j], 0), 1) }
        }
    }
}
