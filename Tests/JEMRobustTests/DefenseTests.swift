// DefenseTests.swift: the SGLD-refinement defense: K = 0 with one noiseless chain is the bare
// model bit for bit; the BPDA gradient is the model's gradient at the refined point; the
// full-chain gradient and the Hessian–vector product pass finite-difference checks; the same
// seed gives the same defended predictions; bad settings get clear errors.
import Attacks
import JEMCore
import JEMRobust
import XCTest

final class DefenseTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }

    /// With `leak: 1` the network is linear, so ∇ₓ logsumexp f is smooth and finite differences
    /// of gradients (HVP, the SGLD chain) are well defined; for LeakyReLU 0.2 the gradient jumps
    /// across kinks, and H = Jᵀ(diag p − ppᵀ)J holds almost everywhere.
    func model(leak: Float = 0.2) throws -> WideResNet {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3, leak: leak))
        m.initialize(seed: 4)
        return m
    }

    func input(_ n: Int = 3) -> Tensor {
        var rng = SeededRandom(seed: 6)
        let x = Tensor(shape: [n, 1, 8, 8]); rng.fillUniform(x, lo: 0, hi: 1)
        return x
    }

    func testZeroStepsOneChainNoNoiseIsTheBareModel() throws {
        let m = try model(), x = input()
        let d = try SGLDDefense(model: m, config: DefenseConfig(steps: 0, chains: 1, initNoise: 0))
        var rng = RowStreams(seed: 1, examples: 0..<x.shape[0], purpose: "test")
        XCTAssertEqual(try d.logits(x, rng: &rng).array, try m.logits(x).array)
        XCTAssertFalse(d.isStochastic)
        let seed: (Tensor) throws -> Tensor = { z in Tensor(shape: z.shape, repeating: 1) }
        XCTAssertEqual(try d.inputGradient(x, rng: &rng, seed: seed).gradient.array, try m.inputGradient(x, seed: seed).gradient.array)
    }

    func testBPDAGradientIsTheModelGradientAtTheRefinedPoint() throws {
        let m = try model(), x = input()
        let d = try SGLDDefense(model: m, config: DefenseConfig(steps: 3, chains: 1))
        var r1 = RowStreams(seed: 9, examples: 0..<x.shape[0], purpose: "test"), r2 = RowStreams(seed: 9, examples: 0..<x.shape[0], purpose: "test")
        let seed: (Tensor) throws -> Tensor = { z in
            let g = Tensor(shape: z.shape)
            try Losses.addCrossEntropyGradient(g, logits: z, labels: [0, 1, 2], weights: [1, 1, 1])
            return g
        }
        let (z, g) = try d.inputGradient(x, rng: &r1, seed: seed)
        let refined = try d.refine(x, rng: &r2)
        let (z2, g2) = try m.inputGradient(refined, seed: seed)
        XCTAssertEqual(z.array, z2.array)
        XCTAssertEqual(g.array, g2.array)
    }

    func testJacobianVectorProductMatchesFiniteDifferences() throws {
        let m = try model(), x = input(2)
        var rng = SeededRandom(seed: 3)
        let u = Tensor(shape: x.shape); rng.fillNormal(u)
        let (_, ju) = try m.jvp(x, u)
        let eps: Float = 1e-3
        let xp = x.copy(), xm = x.copy()
        for i in 0..<x.count { xp[i] += eps * u[i]; xm[i] -= eps * u[i] }
        let zp = try m.logits(xp), zm = try m.logits(xm)
        let fd = Tensor(shape: ju.shape)
        for i in 0..<fd.count { fd[i] = (zp[i] - zm[i]) / (2 * eps) }
        XCTAssertLessThan(relErr(ju, fd), 0.03)
    }

    func relErr(_ a: Tensor, _ b: Tensor) -> Float {
        var e: Float = 0
        for i in 0..<a.count { e = max(e, abs(a[i] - b[i])) }
        return e / max(b.maxAbs, 1e-6)
    }

    func testHessianVectorProductMatchesFiniteDifferences() throws {
        let m = try model(leak: 1), x = input(2)
        var rng = SeededRandom(seed: 3)
        let u = Tensor(shape: x.shape); rng.fillNormal(u)
        let hu = try m.logDensityHVP(x, u)
        let eps: Float = 1e-3
        let xp = x.copy(), xm = x.copy()
        for i in 0..<x.count { xp[i] += eps * u[i]; xm[i] -= eps * u[i] }
        let gp = try m.logDensityGradient(xp).gradient, gm = try m.logDensityGradient(xm).gradient
        let fd = Tensor(shape: x.shape)
        for i in 0..<x.count { fd[i] = (gp[i] - gm[i]) / (2 * eps) }
        var err: Float = 0
        for i in 0..<x.count { err = max(err, abs(fd[i] - hu[i])) }
        XCTAssertLessThan(err / max(fd.maxAbs, 1e-6), 0.05, "HVP vs finite differences of the gradient")
    }

    /// The real network (LeakyReLU 0.2), batch norm off and on (inference statistics). Finite
    /// differences of its gradient jump at every kink a step crosses, so the check differentiates
    /// only continuous functions: J·u by central differences of the logits, v = (diag p − ppᵀ)J·u,
    /// then Jᵀv by central differences of vᵀz(x) along every input coordinate. For a piecewise
    /// linear network this is the Hessian of log p(x) = logsumexp f(x) almost everywhere.
    func testHessianVectorProductOfTheRealNetwork() throws {
        for norm in NormKind.allCases {
            let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3, norm: norm))
            m.initialize(seed: 4)
            if norm == .batch {
                // Non-trivial inference statistics: one training-mode pass over random data.
                var r = SeededRandom(seed: 8)
                let xb = Tensor(shape: [16, 1, 8, 8]); r.fillUniform(xb, lo: 0, hi: 1)
                _ = try m.forward(Variable(xb), training: true, tape: nil)
            }
            let x = input(2)
            var rng = SeededRandom(seed: 3)
            let u = Tensor(shape: x.shape); rng.fillNormal(u)
            let hu = try m.logDensityHVP(x, u)
            let eps: Float = 3e-4
            let xp = x.copy(), xm = x.copy()
            for i in 0..<x.count { xp[i] += eps * u[i]; xm[i] -= eps * u[i] }
            let zp = try m.logits(xp), zm = try m.logits(xm), z = try m.logits(x)
            let p = Losses.softmax(z), k = z.shape[1]
            let v = Tensor(shape: z.shape)
            for r in 0..<2 {
                var dot: Float = 0
                let ju = (0..<k).map { (zp[r * k + $0] - zm[r * k + $0]) / (2 * eps) }
                for j in 0..<k { dot += p[r * k + j] * ju[j] }
                for j in 0..<k { v[r * k + j] = p[r * k + j] * (ju[j] - dot) }
            }
            let fd = Tensor(shape: x.shape)
            let h: Float = 3e-4
            for i in 0..<x.count {
                let a = x.copy(), b = x.copy()
                a[i] += h; b[i] -= h
                let za = try m.logits(a), zb = try m.logits(b)
                var s: Float = 0
                for j in 0..<v.count { s += v[j] * (za[j] - zb[j]) }
                fd[i] = s / (2 * h)
            }
            XCTAssertGreaterThan(fd.maxAbs, 1e-6)
            XCTAssertLessThan(relErr(hu, fd), 0.05, "HVP vs finite differences, norm \(norm)")
        }
    }

    func testFullChainGradientMatchesFiniteDifferences() throws {
        let m = try model(leak: 1), x = input(2)
        // Large steps so the chain's Jacobian is far from the identity (BPDA would fail this).
        let d = try SGLDDefense(model: m, config: DefenseConfig(steps: 3, chains: 2, initNoise: 0.03, stepSize: 30, noise: 0.01, gradient: .full))
        var rr = SeededRandom(seed: 2)
        let r = Tensor(shape: [2, 3]); rr.fillNormal(r)
        let objective = { () -> Double in
            var rng = RowStreams(seed: 5, examples: 0..<x.shape[0], purpose: "test")              // the same draws of noise every time
            let z = try d.logits(x, rng: &rng)
            return (0..<z.count).reduce(0.0) { $0 + Double(z[$1] * r[$1]) }
        }
        var rng = RowStreams(seed: 5, examples: 0..<x.shape[0], purpose: "test")
        let (_, g) = try d.inputGradient(x, rng: &rng) { _ in r.copy() }
        let eps: Float = 1e-2
        var total: Double = 0, count = 0
        var bpdaTotal: Double = 0
        let bpda = try SGLDDefense(model: m, config: DefenseConfig(steps: 3, chains: 2, initNoise: 0.03, stepSize: 30, noise: 0.01, gradient: .bpda))
        var rb = RowStreams(seed: 5, examples: 0..<x.shape[0], purpose: "test")
        let gb = try bpda.inputGradient(x, rng: &rb) { _ in r.copy() }.gradient
        let scale = Double(g.maxAbs) * 0.05
        for i in stride(from: 0, to: x.count, by: 5) {
            let v = x[i]
            x[i] = v + eps; let fp = try objective()
            x[i] = v - eps; let fm = try objective()
            x[i] = v
            let num = (fp - fm) / (2 * Double(eps))
            total += abs(num - Double(g[i])) / max(abs(num), abs(Double(g[i])), scale)
            bpdaTotal += abs(num - Double(gb[i])) / max(abs(num), abs(Double(gb[i])), scale)
            count += 1
        }
        let meanErr = total / Double(count), bpdaErr = bpdaTotal / Double(count)
        XCTAssertLessThan(meanErr, 0.06, "full-chain gradient vs finite differences (mean asymmetric error)")
        XCTAssertGreaterThan(bpdaErr, 2 * meanErr, "the check must be able to tell the exact gradient from BPDA (BPDA \(bpdaErr), full \(meanErr))")
    }

    func testSameSeedSameDefendedPredictions() throws {
        let m = try model(), x = input(4)
        let d = try SGLDDefense(model: m, config: DefenseConfig(steps: 2, chains: 3))
        var a = RowStreams(seed: 11, examples: 0..<x.shape[0], purpose: "test"), b = RowStreams(seed: 11, examples: 0..<x.shape[0], purpose: "test")
        XCTAssertEqual(try d.logits(x, rng: &a).array, try d.logits(x, rng: &b).array)
        XCTAssertTrue(d.isStochastic)
    }

    func testBadSettings() throws {
        let m = try model()
        XCTAssertThrowsError(try SGLDDefense(model: m, config: DefenseConfig(steps: -1))) { XCTAssertTrue("\($0)".contains("--sgld-steps must be ≥ 0")) }
        XCTAssertThrowsError(try SGLDDefense(model: m, config: DefenseConfig(chains: 0))) { XCTAssertTrue("\($0)".contains("--chains must be ≥ 1")) }
        XCTAssertThrowsError(try SGLDDefense(model: m, config: DefenseConfig(eot: 0))) { XCTAssertTrue("\($0)".contains("--eot must be ≥ 1")) }
    }
}
