// AutoAttackTests.swift: the AutoAttack components against their definitions: APGD's checkpoint
// schedule and halving rule, DLR losses against finite differences, FAB's box-constrained
// projection against brute force and closed forms, Square inside the ball and the box, an exact
// robust accuracy on a linear model, and the runner's determinism and resume.
import Attacks
import JEMCore
import XCTest

/// z = W x + b on flattened pixels: its minimal adversarial perturbations are known in closed form.
final class LinearClassifier: Classifier {
    let w: [[Float]], b: [Float]
    init(w: [[Float]], b: [Float]) { self.w = w; self.b = b }
    var numClasses: Int { w.count }
    var gradientDescription: String { "exact (linear)" }
    var isStochastic: Bool { false }
    func logits(_ x: Tensor, rng: inout RowStreams) throws -> Tensor {
        let n = x.shape[0], d = x.count / n, k = w.count
        let z = Tensor(shape: [n, k])
        for r in 0..<n { for j in 0..<k {
            var s = b[j]
            for i in 0..<d { s += w[j][i] * x.data[r * d + i] }
            z.data[r * k + j] = s
        } }
        return z
    }
    func inputGradient(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
        let z = try logits(x, rng: &rng), dz = try seed(z)
        let n = x.shape[0], d = x.count / n, k = w.count
        let g = Tensor(shape: x.shape)
        for r in 0..<n { for j in 0..<k { let s = dz.data[r * k + j]; if s != 0 { for i in 0..<d { g.data[r * d + i] += s * w[j][i] } } } }
        return (z, g)
    }
}

final class AutoAttackTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }

    func testAPGDCheckpointsFollowThePaper() {
        var c = APGDConfig(); c.steps = 100
        // p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of 100 steps (0-based iteration indices).
        XCTAssertEqual(c.checkpoints, [21, 40, 56, 69, 79, 86, 92, 98])
        c.steps = 10
        XCTAssertEqual(c.checkpoints, [1, 2, 3, 4, 5, 6, 7, 8, 9])
    }

    func testAPGDHalvingConditions() {
        // Loss rose in every step: no oscillation; the step was halved last time: keep it.
        XCTAssertFalse(APGD.shouldHalve(window: [0, 1, 2, 3, 4], rho: 0.75, reducedLastCheck: true, bestAtLastCheck: 0, best: 4))
        // Rose in 2 of 4 steps (≤ 0.75·4): halve.
        XCTAssertTrue(APGD.shouldHalve(window: [0, 1, 0.5, 2, 1], rho: 0.75, reducedLastCheck: true, bestAtLastCheck: 0, best: 2))
        // Rose in 3 of 4 steps (≤ 3): halve (the condition is "at most ρ·k").
        XCTAssertTrue(APGD.shouldHalve(window: [0, 1, 2, 1.5, 3], rho: 0.75, reducedLastCheck: true, bestAtLastCheck: 0, best: 3))
        // Monotone, but not halved last time and the best loss did not improve: halve.
        XCTAssertTrue(APGD.shouldHalve(window: [0, 1, 2, 3, 4], rho: 0.75, reducedLastCheck: false, bestAtLastCheck: 5, best: 5))
        XCTAssertFalse(APGD.shouldHalve(window: [0, 1, 2, 3, 4], rho: 0.75, reducedLastCheck: false, bestAtLastCheck: 3, best: 4))
    }

    func testAPGDReachesTheVertexOnALinearModel() throws {
        // On a linear model with a margin far beyond reach, the highest CE in the L∞ ball is at the
        // vertex x − ε·sign(w0 − w1); APGD must return it for the unbroken example.
        let d = 16
        let m = LinearClassifier(w: [(0..<d).map { Float($0 % 3) - 1 }, (0..<d).map { 1 - Float($0 % 3) }], b: [3, -3])
        let x = Tensor(shape: [1, 1, 4, 4], repeating: 0.5)
        var c = APGDConfig(); c.steps = 20; c.epsilon = 0.05
        var streams = [SeededRandom(seed: 1)], rng = RowStreams([SeededRandom(seed: 2)])
        let adv = try APGD(config: c).attack(m, x, labels: [0], streams: &streams, modelRng: &rng)
        // The best point is the vertex x − ε·sign(w0 − w1).
        for i in 0..<d {
            let s = (Float(i % 3) - 1) - (1 - Float(i % 3))
            XCTAssertEqual(adv[i], s == 0 ? adv[i] : 0.5 - 0.05 * (s > 0 ? 1 : -1), accuracy: 1e-5)
        }
    }

    func testDLRGradientsMatchFiniteDifferences() {
        var rng = SeededRandom(seed: 7)
        let z = Tensor(shape: [4, 6]); rng.fillNormal(z, std: 2)
        let labels = [0, 3, 5, 2], targets = [1, 4, 0, 5]
        for obj in [AttackObjective.ce, .dlr, .dlrTargeted, .logitDifference] {
            let (_, g) = obj.evaluate(z, labels: labels, targets: targets)
            for i in 0..<z.count {
                let h: Float = 1e-2, old = z[i]
                z[i] = old + h; let up = obj.evaluate(z, labels: labels, targets: targets).values
                z[i] = old - h; let dn = obj.evaluate(z, labels: labels, targets: targets).values
                z[i] = old
                let num = (up[i / 6] - dn[i / 6]) / (2 * h)
                XCTAssertEqual(g[i], num, accuracy: 2e-3 + 2e-2 * abs(num), "\(obj.name) ∂/∂z[\(i)]")
            }
        }
    }

    func testDLRValues() throws {
        let z = try Tensor(shape: [1, 5], values: [3, 1, 4, 0, 2])
        // y = 1, sorted 4, 3, 2, 1, 0: −(1 − 4)/(4 − 2) = 1.5; targeted towards class 0: −(1 − 3)/(4 − (2 + 1)/2) = 0.8.
        XCTAssertEqual(AttackObjective.dlr.evaluate(z, labels: [1], targets: nil).values[0], 1.5, accuracy: 1e-6)
        XCTAssertEqual(AttackObjective.dlrTargeted.evaluate(z, labels: [1], targets: [0]).values[0], 0.8, accuracy: 1e-6)
    }

    /// Minimal norm of d with ⟨w, t + d⟩ = b and t + d ∈ [0,1]^2 by dense search along the line.
    func bruteForce2D(t: [Float], w: [Float], b: Float, norm: ThreatNorm) -> Float? {
        var best: Float? = nil
        let steps = 50_000
        for s in 0...steps {
            let u = Float(s) / Float(steps)
            // Parametrise the line by its coordinate with the larger |w|.
            let (i, j) = abs(w[0]) >= abs(w[1]) ? (1, 0) : (0, 1)
            var p = [Float](repeating: 0, count: 2)
            p[i] = u; p[j] = (b - w[i] * u) / w[j]
            guard p[j] >= 0, p[j] <= 1 else { continue }
            let d0 = p[0] - t[0], d1 = p[1] - t[1]
            let v = norm == .linf ? max(abs(d0), abs(d1)) : (d0 * d0 + d1 * d1).squareRoot()
            best = min(best ?? v, v)
        }
        return best
    }

    func testFABProjectionMatchesBruteForce() {
        var rng = SeededRandom(seed: 11)
        var checked = 0
        for _ in 0..<40 {
            let t = [rng.uniform(), rng.uniform()], w = [2 * rng.uniform() - 1, 2 * rng.uniform() - 1]
            let b = w[0] * rng.uniform() + w[1] * rng.uniform()   // a hyperplane that meets the box
            for norm in ThreatNorm.allCases {
                guard let want = bruteForce2D(t: t, w: w, b: b, norm: norm) else { continue }
                var d = [Float](repeating: 0, count: 2)
                t.withUnsafeBufferPointer { tp in w.withUnsafeBufferPointer { wp in d.withUnsafeMutableBufferPointer {
                    BoxHyperplane.project(tp.baseAddress!, wp.baseAddress!, b: b, count: 2, norm: norm, into: $0.baseAddress!)
                } } }
                let got = norm == .linf ? max(abs(d[0]), abs(d[1])) : (d[0] * d[0] + d[1] * d[1]).squareRoot()
                XCTAssertEqual(w[0] * (t[0] + d[0]) + w[1] * (t[1] + d[1]), b, accuracy: 1e-4, "on the hyperplane")
                XCTAssertTrue((0...1).contains(t[0] + d[0]) && (0...1).contains(t[1] + d[1]), "in the box")
                XCTAssertEqual(got, want, accuracy: 1e-3, "\(norm) minimal norm")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 40)
    }

    func testFABProjectionClosedFormInTheInterior() {
        // Far from the box's faces the minimal displacement is c·w/‖w‖² (L2) and c·sign(w)/‖w‖₁ (L∞).
        var rng = SeededRandom(seed: 5)
        let n = 50
        let t = [Float](repeating: 0.5, count: n), w = (0..<n).map { _ in 2 * rng.uniform() - 1 }
        let c: Float = 0.01, b = w.reduce(0) { $0 + $1 * 0.5 } + c
        let l1 = w.reduce(0) { $0 + abs($1) }, l2sq = w.reduce(0) { $0 + $1 * $1 }
        for norm in ThreatNorm.allCases {
            var d = [Float](repeating: 0, count: n)
            t.withUnsafeBufferPointer { tp in w.withUnsafeBufferPointer { wp in d.withUnsafeMutableBufferPointer {
                BoxHyperplane.project(tp.baseAddress!, wp.baseAddress!, b: b, count: n, norm: norm, into: $0.baseAddress!)
            } } }
            for i in 0..<n {
                let want = norm == .l2 ? c * w[i] / l2sq : c * (w[i] > 0 ? 1 : -1) / l1
                XCTAssertEqual(d[i], want, accuracy: 1e-6)
            }
        }
    }

    func testSquareScheduleOfP() {
        // p_init at queries 0...10, halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000.
        let c = SquareConfig()
        let expect: [(Int, Float)] = [(0, 0.8), (10, 0.8), (11, 0.4), (50, 0.4), (51, 0.2), (200, 0.2), (201, 0.1),
                                      (501, 0.05), (1001, 0.025), (2001, 0.0125), (4001, 0.00625), (6001, 0.003125),
                                      (8000, 0.003125), (8001, 0.0015625), (9999, 0.0015625)]
        for (i, p) in expect { XCTAssertEqual(c.p(at: i), p, accuracy: 1e-9, "query \(i)") }
        // Stretched to the budget (the Square paper's code): query i counts as ⌊i / queries · 10 000⌋.
        var r = SquareConfig(); r.rescaleSchedule = true; r.queries = 100
        let stretched: [(Int, Float)] = [(0, 0.8), (1, 0.2), (2, 0.2), (3, 0.1), (5, 0.1), (6, 0.05), (10, 0.05), (11, 0.025),
                                         (41, 0.00625), (81, 0.0015625), (99, 0.0015625)]
        for (i, p) in stretched { XCTAssertEqual(r.p(at: i), p, accuracy: 1e-9, "query \(i) of 100, stretched") }
        r.queries = 5000   // AutoAttack's budget: the stretched schedule halves twice as often as the fixed one
        XCTAssertEqual(r.p(at: 6), 0.4, accuracy: 1e-9); XCTAssertEqual(c.p(at: 6), 0.8, accuracy: 1e-9)
        XCTAssertEqual(r.p(at: 4001), 0.0015625, accuracy: 1e-9); XCTAssertEqual(c.p(at: 4001), 0.00625, accuracy: 1e-9)
        r.queries = 10_000
        for (i, p) in expect { XCTAssertEqual(r.p(at: i), p, accuracy: 1e-9, "query \(i) of 10 000, stretched = fixed") }
    }

    func testSquareLinfProposalsAlwaysChangeThePoint() throws {
        // One grey image, a model it cannot be pushed across: every query after the first must differ
        // from the best point so far (a proposal equal to it would waste the query; with one channel and
        // a 1×1 window half of them would without the redraw).
        final class Recording: Classifier {
            let inner: LinearClassifier; var inputs: [[Float]] = []
            init(_ inner: LinearClassifier) { self.inner = inner }
            var numClasses: Int { inner.numClasses }
            var gradientDescription: String { inner.gradientDescription }
            var isStochastic: Bool { false }
            func logits(_ x: Tensor, rng: inout RowStreams) throws -> Tensor { inputs.append(x.array); return try inner.logits(x, rng: &rng) }
            func inputGradient(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
                try inner.inputGradient(x, rng: &rng, seed: seed)
            }
        }
        var rng = SeededRandom(seed: 8)
        let d = 36
        let lin = LinearClassifier(w: (0..<2).map { _ in (0..<d).map { _ in rng.uniform() - 0.5 } }, b: [100, 0])
        let m = Recording(lin)
        let x = Tensor(shape: [1, 1, 6, 6]); rng.fillUniform(x, lo: 0, hi: 1)
        var c = SquareConfig(); c.epsilon = 0.1; c.queries = 200; c.rescaleSchedule = true
        var streams = [ExampleStreams.stream(seed: 4, example: 0, purpose: "t")]
        var mr = RowStreams(seed: 2, examples: 0..<1, purpose: "test")
        _ = try Square(config: c).perturb(m, x, labels: [0], streams: &streams, modelRng: &mr)
        XCTAssertEqual(m.inputs.count, 201, "the initial point and 200 queries")
        func margin(_ v: [Float]) -> Float { zip(lin.w[0], lin.w[1]).enumerated().reduce(lin.b[0] - lin.b[1]) { $0 + ($1.element.0 - $1.element.1) * v[$1.offset] } }
        var best = m.inputs[0], loss = margin(best)
        for (q, cand) in m.inputs.dropFirst().enumerated() {
            guard cand != best else { return XCTFail("query \(q) proposed the current point") }
            let l = margin(cand)
            if l < loss { best = cand; loss = l }
        }
    }

    func testSquareStaysInTheBallAndTheBox() throws {
        var rng = SeededRandom(seed: 3)
        let d = 3 * 10 * 10
        let m = LinearClassifier(w: (0..<4).map { _ in (0..<d).map { _ in rng.uniform() - 0.5 } }, b: [0, 0, 0, 0])
        let x = Tensor(shape: [5, 3, 10, 10]); rng.fillUniform(x, lo: 0, hi: 1)
        for i in 0..<20 { x[i] = 0; x[x.count - 1 - i] = 1 }
        var mr = RowStreams(seed: 2, examples: 0..<5, purpose: "test")
        let y = try m.logits(x, rng: &mr).argmaxRows()
        for norm in ThreatNorm.allCases {
            var c = SquareConfig(); c.norm = norm; c.epsilon = norm == .linf ? 0.05 : 0.5; c.queries = 300
            var streams = (0..<5).map { ExampleStreams.stream(seed: 1, example: $0, purpose: "t") }
            // perturb, not attack: the raw proposals must already satisfy the threat model.
            let adv = try Square(config: c).perturb(m, x, labels: y, streams: &streams, modelRng: &mr)
            for i in 0..<adv.count { XCTAssertTrue(adv[i] >= 0 && adv[i] <= 1) }
            for v in Projection.norms(adv, x, norm: norm) { XCTAssertLessThanOrEqual(v, c.epsilon * (1 + 1e-4)) }
        }
    }

    /// Two-class linear model on points inside [0.2, 0.8]^d: an example is robust at L∞ ε exactly when
    /// its margin exceeds ε·‖w0 − w1‖₁ (L2: ε·‖w0 − w1‖₂), as long as ε < 0.2 keeps the box inactive.
    func linearProblem(n: Int = 40, d: Int = 16) -> (LinearClassifier, Tensor, [Int]) {
        var rng = SeededRandom(seed: 21)
        let w0 = (0..<d).map { _ in rng.uniform() - 0.5 }, w1 = (0..<d).map { _ in rng.uniform() - 0.5 }
        let m = LinearClassifier(w: [w0, w1], b: [0, 0])
        let x = Tensor(shape: [n, 1, 4, d / 4]); rng.fillUniform(x, lo: 0.2, hi: 0.8)
        var r2 = RowStreams(seed: 1, examples: 0..<n, purpose: "test")
        let y = try! m.logits(x, rng: &r2).argmaxRows().enumerated().map { $0.offset % 7 == 0 ? 1 - $0.element : $0.element }
        return (m, x, y)
    }

    func exactRobustAccuracy(_ m: LinearClassifier, _ x: Tensor, _ y: [Int], norm: ThreatNorm, eps: Float) -> Double {
        let n = x.shape[0], d = x.count / n
        let dw = (0..<d).map { m.w[0][$0] - m.w[1][$0] }
        let scale = norm == .linf ? dw.reduce(0) { $0 + abs($1) } : dw.reduce(0) { $0 + $1 * $1 }.squareRoot()
        var robust = 0
        for r in 0..<n {
            var s: Float = 0
            for i in 0..<d { s += dw[i] * x.data[r * d + i] }
            let margin = y[r] == 0 ? s : -s
            if margin > eps * scale { robust += 1 }
        }
        return Double(robust) / Double(n)
    }

    func testLinearModelRobustAccuracyIsExact() throws {
        let (m, x, y) = linearProblem()
        for norm in ThreatNorm.allCases {
            let eps: Float = norm == .linf ? 0.05 : 0.15
            var c = AutoAttackConfig(); c.norm = norm; c.epsilon = eps; c.iterations = 20; c.queries = 200; c.targetClasses = 1
            c.attacks = [.apgdCE, .fabT, .square]
            let want = exactRobustAccuracy(m, x, y, norm: norm, eps: eps)
            XCTAssertGreaterThan(want, 0.1); XCTAssertLessThan(want, 0.9)
            let r = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 16, fingerprint: [:]).run()
            XCTAssertEqual(r.robustAccuracy, want, accuracy: 1e-9, "\(norm)")
            // Each white-box component alone is exact on a linear model too.
            for a in [AutoAttackComponent.apgdCE, .fabT] {
                var c1 = c; c1.attacks = [a]
                let r1 = try AutoAttackRunner(model: m, config: c1, images: x, labels: y, batchSize: 16, fingerprint: [:]).run()
                XCTAssertEqual(r1.robustAccuracy, want, accuracy: 1e-9, "\(a.rawValue) \(norm)")
            }
        }
    }

    func smallWRN() throws -> (WideResNet, Tensor, [Int]) {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 10))
        m.initialize(seed: 3)
        var rng = SeededRandom(seed: 4)
        let x = Tensor(shape: [10, 1, 12, 12]); rng.fillUniform(x, lo: 0, hi: 1)
        let y = try m.logits(x).argmaxRows()   // all correct, so every component has work
        return (m, x, y)
    }

    func testSameSeedSameResultAtAnyBatchSize() throws {
        let (m, x, y) = try smallWRN()
        var c = AutoAttackConfig(); c.epsilon = 2 / 255; c.iterations = 4; c.queries = 20; c.targetClasses = 2
        func run(_ batch: Int, threads: Int) throws -> AutoAttackResult {
            Runtime.configure(threads: threads)
            return try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: batch, fingerprint: [:]).run()
        }
        // Batch 1 takes the kernels' single-image paths, batch 10 their batched ones.
        let a = try run(10, threads: 2), b = try run(1, threads: 1)
        XCTAssertEqual(a.brokenBy, b.brokenBy); XCTAssertEqual(a.adversarialPredictions, b.adversarialPredictions)
        XCTAssertEqual(a.adversarials.array, b.adversarials.array)
    }

    struct Killed: Error {}

    func testResumeAfterInterruptionEqualsUninterruptedRun() throws {
        let (m, x, y) = try smallWRN()
        var c = AutoAttackConfig(); c.epsilon = 3 / 255; c.iterations = 5; c.queries = 30; c.targetClasses = 2
        let fp = ["model": "small"]
        let full = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 3, fingerprint: fp).run()
        for killAt in [1, 3, 6] {
            var saved: AutoAttackState? = nil, count = 0
            let first = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 3, fingerprint: fp)
            XCTAssertThrowsError(try first.run(checkpoint: { s in
                count += 1
                if count > killAt { throw Killed() }
                // Round-trip through JSON, as the state file does.
                saved = try JSONDecoder().decode(AutoAttackState.self, from: JSONEncoder().encode(s))
            }))
            let resumed = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 3, fingerprint: fp, resume: saved).run()
            XCTAssertEqual(resumed.brokenBy, full.brokenBy, "killed after \(killAt) checkpoints")
            XCTAssertEqual(resumed.adversarialPredictions, full.adversarialPredictions)
            XCTAssertEqual(resumed.adversarials.array, full.adversarials.array)
            XCTAssertEqual(resumed.perAttack.map(\.robust), full.perAttack.map(\.robust))
            XCTAssertEqual(resumed.robustRunAccuracies, full.robustRunAccuracies)
        }
    }

    /// A resumed run's seconds count the clean evaluation and the attack time of the killed
    /// invocation too (kept in the state), so its report is the whole run's time.
    func testResumedRunSecondsIncludeTheKilledInvocation() throws {
        let (m, x, y) = try smallWRN()
        var c = AutoAttackConfig(); c.epsilon = 3 / 255; c.iterations = 5; c.queries = 30; c.targetClasses = 2
        var saved: AutoAttackState? = nil, count = 0
        XCTAssertThrowsError(try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 3, fingerprint: [:]).run(checkpoint: { s in
            count += 1
            if count > 2 { throw Killed() }
            saved = try JSONDecoder().decode(AutoAttackState.self, from: JSONEncoder().encode(s))
        }))
        var s = try XCTUnwrap(saved)
        XCTAssertNotNil(s.cleanSeconds)
        XCTAssertGreaterThan(s.position, 0, "killed inside the first attack")
        // Pretend the killed invocation had spent long on both (the real figures are milliseconds here).
        s.cleanSeconds = 1000; s.currentSeconds += 500
        let r = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 3, fingerprint: [:], resume: s).run()
        XCTAssertEqual(r.cleanSeconds, 1000)
        XCTAssertGreaterThanOrEqual(r.perAttack[0].seconds, 500)
        XCTAssertEqual(r.seconds, 1000 + r.perAttack.reduce(0) { $0 + $1.seconds }, accuracy: 1e-9)
    }

    /// A linear model whose logits carry per-row noise: a stochastic model for the evaluation runs.
    final class NoisyLinear: Classifier {
        let base: LinearClassifier, std: Float
        init(_ base: LinearClassifier, std: Float) { self.base = base; self.std = std }
        var numClasses: Int { base.numClasses }
        var gradientDescription: String { "exact (linear)" }
        var isStochastic: Bool { true }
        func logits(_ x: Tensor, rng: inout RowStreams) throws -> Tensor {
            let z = try base.logits(x, rng: &rng), e = Tensor(shape: z.shape)
            rng.fillNormal(e, std: std)
            for i in 0..<z.count { z.data[i] += e.data[i] }
            return z
        }
        func inputGradient(_ x: Tensor, rng: inout RowStreams, seed: (Tensor) throws -> Tensor) throws -> (logits: Tensor, gradient: Tensor) {
            try base.inputGradient(x, rng: &rng, seed: seed)
        }
    }

    func testEvaluationRunsOfAStochasticModel() throws {
        let (m, x, y) = linearProblem()
        let noisy = NoisyLinear(m, std: 0.3)
        var c = AutoAttackConfig(); c.epsilon = 0.03; c.iterations = 5; c.attacks = [.apgdCE]
        var states: [AutoAttackState] = []
        let r = try AutoAttackRunner(model: noisy, config: c, images: x, labels: y, batchSize: 16, evalRuns: 4, fingerprint: [:])
            .run(checkpoint: { states.append($0) })
        XCTAssertEqual(r.cleanRunAccuracies.count, 4); XCTAssertEqual(r.robustRunAccuracies.count, 4)
        // Robust means correct in every run that judged the final point, so no run is below the worst case;
        // a broken point was wrong in at least one of those runs, so it adds at most M − 1 correct runs.
        let n = Double(y.count), runs = Double(r.robustRunAccuracies.count)
        for a in r.robustRunAccuracies { XCTAssertGreaterThanOrEqual(a, r.robustAccuracy - 1e-12) }
        let broken = Double((0..<y.count).filter { r.cleanPredictions[$0] == y[$0] && r.brokenBy[$0] != nil }.count)
        XCTAssertGreaterThan(broken, 0, "the attack breaks some points")
        XCTAssertLessThanOrEqual(r.robustRunAccuracies.reduce(0, +) * n, runs * r.robustAccuracy * n + (runs - 1) * broken + 1e-9)
        // The noise matters: the runs disagree somewhere.
        XCTAssertGreaterThan(Set(r.cleanRunAccuracies).count + Set(r.robustRunAccuracies).count, 2)
        // A state written before per-run results were kept cannot finish the run: a clear error.
        guard var old = states.first(where: { !$0.finished.isEmpty && !$0.complete }) else { return XCTFail("no mid-run state") }
        old.latestRunCorrect = nil; old.robustRunAccuracies = []
        XCTAssertThrowsError(try AutoAttackRunner(model: noisy, config: c, images: x, labels: y, batchSize: 16, evalRuns: 4,
                                                  fingerprint: [:], resume: old).run()) { e in
            XCTAssertTrue("\(e)".contains("--state"), "\(e)")
        }
    }

    /// Moves every point by `strength` · ε along the sign of the linear model's logit difference,
    /// toward the other class: a fixed attack whose points' margins are known in advance.
    struct TowardBoundary: ExampleAttack {
        let name: String, strength: Float, model: LinearClassifier
        var norm: ThreatNorm { .linf }
        var epsilon: Float { 0.02 }
        func perturb(_ m: Classifier, _ x: Tensor, labels: [Int], streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
            let n = x.shape[0], d = x.count / n, out = x.copy()
            for r in 0..<n {
                for i in 0..<d {
                    let dw = model.w[0][i] - model.w[1][i]   // d(z0 − z1)/dx_i
                    out.data[r * d + i] += strength * epsilon * (labels[r] == 0 ? -1 : 1) * (dw > 0 ? 1 : -1)
                }
            }
            return out
        }
    }

    func testEachExampleKeepsItsMostAdversarialPointForTheFinalRuns() throws {
        // Judged by one run, a weak attack after a strong one must not replace the strong one's points:
        // the final runs look at the lowest-margin point of each example.
        let (m, x, y) = linearProblem()
        let model = NoisyLinear(m, std: 0)   // stochastic by its flag, so the runs and the final phase apply
        let strong = TowardBoundary(name: "strong", strength: 1, model: m), weak = TowardBoundary(name: "weak", strength: 0.2, model: m)
        let r = try AutoAttackRunner(model: model, config: AutoAttackConfig(), images: x, labels: y, batchSize: 7, evalRuns: 3, judgeRuns: 1,
                                     components: [strong, weak], fingerprint: [:]).run()
        XCTAssertEqual(r.perAttack.map(\.name), ["strong", "weak", AutoAttackRunner.finalRunsPhase])
        var sub = (0..<y.count).map { ExampleStreams.stream(seed: 0, example: $0, purpose: "t") }
        var rng = RowStreams(seed: 0, examples: 0..<y.count, purpose: "t")
        let expected = try strong.attack(model, x, labels: y, streams: &sub, modelRng: &rng)
        let d = x.count / y.count
        var robust = 0
        for i in 0..<y.count where r.cleanPredictions[i] == y[i] {
            XCTAssertEqual(Array(r.adversarials.array[(i * d)..<((i + 1) * d)]), Array(expected.array[(i * d)..<((i + 1) * d)]), "example \(i)")
            XCTAssertNotEqual(r.brokenBy[i], "weak")
            if r.brokenBy[i] == nil { robust += 1 }
        }
        XCTAssertGreaterThan(robust, 0)
        XCTAssertEqual(r.robustRunAccuracies.count, 3)
        // Noise-free runs agree, so the final runs break nothing and every run's accuracy is the worst case.
        XCTAssertEqual(r.perAttack[2].robust, r.perAttack[1].robust)
        XCTAssertEqual(r.robustRunAccuracies, Array(repeating: r.robustAccuracy, count: 3))
    }

    func testFinalRunsBreakWhatOneJudgingRunMissed() throws {
        let (m, x, y) = linearProblem(n: 60)
        let noisy = NoisyLinear(m, std: 0.3)
        var c = AutoAttackConfig(); c.epsilon = 0.03; c.iterations = 5; c.queries = 20; c.attacks = [.apgdCE, .square]
        func run(_ j: Int, killAt: Int? = nil, resume: AutoAttackState? = nil) throws -> (AutoAttackResult?, [AutoAttackState]) {
            var states: [AutoAttackState] = []
            let runner = try AutoAttackRunner(model: noisy, config: c, images: x, labels: y, batchSize: 16, evalRuns: 5, judgeRuns: j,
                                              fingerprint: [:], resume: resume)
            do {
                let r = try runner.run(checkpoint: { s in
                    if let k = killAt, states.count >= k { throw Killed() }
                    states.append(try JSONDecoder().decode(AutoAttackState.self, from: JSONEncoder().encode(s)))
                })
                return (r, states)
            } catch is Killed { return (nil, states) }
        }
        let (r1, states) = try run(1)
        let r = try XCTUnwrap(r1)
        XCTAssertEqual(r.perAttack.map(\.name), ["apgd-ce", "square", AutoAttackRunner.finalRunsPhase])
        // Noise flips some screened points in the later runs: the final phase breaks them and credits the attack that found them.
        let screened = r.perAttack[1].robust, final = r.perAttack[2].robust
        XCTAssertLessThan(final, screened)
        XCTAssertEqual((0..<y.count).filter { r.brokenBy[$0] == nil && r.cleanPredictions[$0] == y[$0] }.count, final)
        XCTAssertFalse(r.brokenBy.contains(AutoAttackRunner.finalRunsPhase))
        XCTAssertEqual(r.robustRunAccuracies.count, 5)
        for a in r.robustRunAccuracies { XCTAssertGreaterThanOrEqual(a, r.robustAccuracy - 1e-12) }
        // J = M judges every point by all runs: no final phase.
        let (all, _) = try run(5)
        XCTAssertEqual(try XCTUnwrap(all).perAttack.map(\.name), ["apgd-ce", "square"])
        // Killed anywhere, the final phase included, a resumed run gives the uninterrupted result.
        XCTAssertTrue(states.contains { $0.finished.count == 2 && $0.position > 0 }, "a checkpoint inside the final phase")
        for k in [1, states.count / 2, states.count - 2] {
            let (none, saved) = try run(1, killAt: k)
            XCTAssertNil(none)
            let (resumed, _) = try run(1, resume: saved.last)
            let q = try XCTUnwrap(resumed)
            XCTAssertEqual(q.brokenBy, r.brokenBy, "killed after \(k) checkpoints")
            XCTAssertEqual(q.adversarialPredictions, r.adversarialPredictions)
            XCTAssertEqual(q.adversarials.array, r.adversarials.array)
            XCTAssertEqual(q.perAttack.map(\.robust), r.perAttack.map(\.robust))
            XCTAssertEqual(q.robustRunAccuracies, r.robustRunAccuracies)
        }
        XCTAssertThrowsError(try AutoAttackRunner(model: noisy, config: c, images: x, labels: y, batchSize: 16, evalRuns: 5, judgeRuns: 6,
                                                  fingerprint: [:])) { e in XCTAssertTrue("\(e)".contains("--judge-runs"), "\(e)") }
    }

    func testEvaluationOnlyIsJudgedByTheCleanRuns() throws {
        // No attack (a curve's ε = 0): robust accuracy is the clean runs' worst case, with no second
        // judging pass that would only draw a stochastic model's noise again.
        let (m, x, y) = linearProblem()
        let noisy = NoisyLinear(m, std: 0.3)
        var phases: [(String, Int, Int)] = []
        let r = try AutoAttackRunner(model: noisy, config: AutoAttackConfig(), images: x, labels: y, batchSize: 16, evalRuns: 4,
                                     components: [], fingerprint: [:])
            .run(progress: { name, done, total, _ in phases.append((name, done, total)) })
        XCTAssertEqual(r.robustAccuracy, r.cleanAccuracy)
        XCTAssertTrue(r.brokenBy.allSatisfy { $0 == nil })
        XCTAssertTrue(r.perAttack.isEmpty)
        XCTAssertEqual(r.robustRunAccuracies.count, 4)
        // An example counts as robust in a run only if it was right in every clean run (the worst case).
        XCTAssertEqual(r.robustRunAccuracies, Array(repeating: r.robustAccuracy, count: 4))
        // Noise makes some examples right in one run and wrong in another: the worst case is below the mean.
        XCTAssertLessThan(r.cleanAccuracy, r.cleanRunAccuracies.reduce(0, +) / 4)
        // The clean evaluation reports its progress, and nothing else runs.
        XCTAssertEqual(Set(phases.map { $0.0 }), [AutoAttackRunner.cleanPhase])
        XCTAssertTrue(phases.contains { $0.1 == y.count && $0.2 == y.count })
    }

    func testProgressMovesInsideABatch() throws {
        // One batch holds every point: without reports from inside the attacks the count would jump
        // from 0 to all at the end (for minutes on a robust model); with them it moves step by step.
        let (m, x, y) = linearProblem()
        var c = AutoAttackConfig(); c.attacks = [.apgdCE, .square]; c.epsilon = 1e-4; c.iterations = 20; c.queries = 30
        var seen: [String: [Int]] = [:], totals: [String: Int] = [:]
        let r = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: y.count, fingerprint: [:])
            .run(progress: { name, done, total, _ in seen[name, default: []].append(done); totals[name] = total })
        for name in ["apgd-ce", "square"] {
            let d = try XCTUnwrap(seen[name]), total = try XCTUnwrap(totals[name])
            XCTAssertGreaterThan(total, 1)
            XCTAssertTrue(d.contains { $0 > 0 && $0 < total }, "\(name): \(d)")
            XCTAssertEqual(d, d.sorted(), name)
            XCTAssertEqual(d.last, total, name)
        }
        // A transfer attack (inner attacks run one after the other) moves forward through all of them.
        var steps: [Int] = []
        _ = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: y.count,
                                 components: [Surrogate(name: "transfer", classifier: m, attacks: c.components(classes: 2))], fingerprint: [:])
            .run(progress: { name, done, _, _ in if name == "transfer" { steps.append(done) } })
        XCTAssertEqual(steps, steps.sorted())
        XCTAssertGreaterThan(Set(steps).count, 10)
        // Observing changes nothing: the same run without a progress handler gives the same result.
        let r2 = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: y.count, fingerprint: [:]).run()
        XCTAssertEqual(r.brokenBy, r2.brokenBy)
        XCTAssertEqual(r.adversarials.array, r2.adversarials.array)
    }

    func testStateFromAnotherRunIsRefused() throws {
        let (m, x, y) = try smallWRN()
        var c = AutoAttackConfig(); c.iterations = 2; c.queries = 5; c.targetClasses = 1
        var s: AutoAttackState? = nil
        _ = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 5, fingerprint: ["model": "a", "eps": "1"])
            .run(checkpoint: { s = $0 })
        XCTAssertThrowsError(try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 5,
                                                  fingerprint: ["model": "b", "eps": "1"], resume: s)) { e in
            XCTAssertTrue("\(e)".contains("model"), "\(e)")
        }
        // The model file at another path (another checkout or machine) with the same contents continues;
        // other contents at the same path do not.
        let fp = ["model": "/a/jem.safetensors", "model_hash": "1", "eps": "1"]
        var t: AutoAttackState? = nil
        _ = try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 5, fingerprint: fp).run(checkpoint: { t = $0 })
        var moved = fp; moved["model"] = "/b/jem.safetensors"
        XCTAssertNoThrow(try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 5, fingerprint: moved, resume: t))
        var changed = fp; changed["model_hash"] = "2"
        XCTAssertThrowsError(try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 5, fingerprint: changed, resume: t)) { e in
            XCTAssertTrue("\(e)".contains("model_hash"), "\(e)")
        }
        XCTAssertEqual(RunFingerprint.differences(["model": "/a"], ["model": "/b"]), ["model"])
    }

    func testBadSettingsAreRejected() throws {
        let (m, x, y) = try smallWRN()
        var c = AutoAttackConfig(); c.queries = 0; c.attacks = [.square]
        XCTAssertThrowsError(try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 5, fingerprint: [:]))
        c = AutoAttackConfig(); c.norm = .linf; c.epsilon = 2
        XCTAssertThrowsError(try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 5, fingerprint: [:]))
        c = AutoAttackConfig(); c.targetClasses = 10
        XCTAssertThrowsError(try AutoAttackRunner(model: m, config: c, images: x, labels: y, batchSize: 5, fingerprint: [:]))
    }
}
