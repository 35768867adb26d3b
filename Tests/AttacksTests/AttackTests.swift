// AttackTests.swift: properties of the attacks over random inputs and models: the threat model
// holds by construction, projection is the identity inside the ball, restarts only help, seeds
// reproduce, FGSM is x + ε·sign(∇) clipped; and bad settings get clear errors.
import Attacks
import JEMCore
import XCTest

final class AttackTests: XCTestCase {
    override func setUp() { Runtime.configure(threads: 2) }

    func model(seed: UInt64 = 1) throws -> WideResNet {
        let m = try WideResNet(config: WRNConfig(depth: 10, width: 1, inChannels: 1, numClasses: 3))
        m.initialize(seed: seed)
        return m
    }

    func inputs(_ n: Int = 6, seed: UInt64 = 2) -> (Tensor, [Int]) {
        var rng = SeededRandom(seed: seed)
        let x = Tensor(shape: [n, 1, 8, 8])
        rng.fillUniform(x, lo: 0, hi: 1)
        for i in 0..<8 { x[i] = 0; x[x.count - 1 - i] = 1 }   // pixels at the box edges
        return (x, (0..<n).map { $0 % 3 })
    }

    func assertInBall(_ adv: Tensor, _ x: Tensor, norm: ThreatNorm, eps: Float, file: StaticString = #filePath, line: UInt = #line) {
        for i in 0..<adv.count { XCTAssertTrue(adv[i] >= 0 && adv[i] <= 1, "pixel \(adv[i]) outside [0,1]", file: file, line: line) }
        for v in Projection.norms(adv, x, norm: norm) { XCTAssertLessThanOrEqual(v, eps * (1 + 1e-5) + 1e-7, "norm \(v) > ε \(eps)", file: file, line: line) }
    }

    /// An attack that returns garbage: the entry point must still enforce the threat model.
    struct Wild: Attack {
        let norm: ThreatNorm, epsilon: Float
        func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], targets: [Int]?, streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
            let t = Tensor(shape: x.shape); streams[0].fillUniform(t, lo: -5, hi: 5); return t
        }
    }

    func testOutputsLieInTheBallAndTheBox() throws {
        let m = try model()
        let (x, y) = inputs()
        for norm in ThreatNorm.allCases {
            let eps: Float = norm == .linf ? 8 / 255 : 0.5
            var rng = SeededRandom(seed: 3)
            assertInBall(try Wild(norm: norm, epsilon: eps).attack(m, x, labels: y, rng: &rng), x, norm: norm, eps: eps)
            var c = PGDConfig(); c.norm = norm; c.epsilon = eps; c.stepSize = PGDConfig.defaultStepSize(norm: norm, epsilon: eps, steps: 5); c.steps = 5; c.restarts = 2
            assertInBall(try PGD(config: c).attack(m, x, labels: y, rng: &rng), x, norm: norm, eps: eps)
        }
    }

    func testProjectionIsIdentityInsideTheBall() {
        let (x, _) = inputs()
        var rng = SeededRandom(seed: 4)
        for norm in ThreatNorm.allCases {
            let eps: Float = norm == .linf ? 0.1 : 1.0
            let adv = x.copy()
            for i in 0..<adv.count { adv[i] = min(max(x[i] + (norm == .linf ? 0.05 : 0.02) * (2 * rng.uniform() - 1), 0), 1) }
            let before = adv.array
            Projection.project(adv, around: x, norm: norm, epsilon: eps)
            XCTAssertEqual(adv.array, before, "\(norm)")
        }
    }

    func testMoreRestartsNeverRaiseRobustAccuracy() throws {
        let m = try model()
        let (x, y) = inputs(24, seed: 9)
        var accs: [Double] = []
        for r in [1, 3] {
            var c = PGDConfig(); c.epsilon = 2 / 255; c.stepSize = 0.5 / 255; c.steps = 3; c.restarts = r
            accs.append(try Evaluation.run(m, attack: try PGD(config: c), images: x, labels: y, batchSize: 8, seed: 5).robustAccuracy)
        }
        XCTAssertLessThanOrEqual(accs[1], accs[0])
    }

    func testSameSeedSameOutput() throws {
        let m = try model()
        let (x, y) = inputs()
        var c = PGDConfig(); c.norm = .l2; c.epsilon = 0.5; c.stepSize = 0.1; c.steps = 3
        var r1 = SeededRandom(seed: 8), r2 = SeededRandom(seed: 8)
        let a = try PGD(config: c).attack(m, x, labels: y, rng: &r1), b = try PGD(config: c).attack(m, x, labels: y, rng: &r2)
        XCTAssertEqual(a.array, b.array)
    }

    func testFGSMIsSignStepClipped() throws {
        let m = try model()
        let (x, y) = inputs()
        let eps: Float = 0.05
        var rng = SeededRandom(seed: 1)
        let adv = try PGD.fgsm(epsilon: eps).attack(m, x, labels: y, rng: &rng)
        let (_, g) = try m.crossEntropyGradient(x, labels: y)
        for i in 0..<x.count {
            let s: Float = g[i] > 0 ? 1 : (g[i] < 0 ? -1 : 0)
            XCTAssertEqual(adv[i], min(max(x[i] + eps * s, 0), 1), accuracy: 1e-6)
        }
    }

    func testAttackLowersAccuracyAndEpsilonZeroChangesNothing() throws {
        let m = try model()
        let (x, y) = inputs(12)
        var c = PGDConfig(); c.epsilon = 0; c.stepSize = 0
        let r0 = try Evaluation.run(m, attack: try PGD(config: c), images: x, labels: y, batchSize: 5, seed: 1)
        XCTAssertEqual(r0.robustAccuracy, r0.cleanAccuracy)
        c.epsilon = 0.5; c.stepSize = 0.1; c.steps = 10
        let r1 = try Evaluation.run(m, attack: try PGD(config: c), images: x, labels: y, batchSize: 5, seed: 1)
        XCTAssertLessThanOrEqual(r1.robustAccuracy, r0.robustAccuracy)
    }

    func testProgressMovesInsideABatch() throws {
        // One batch of 12 images, 2 restarts × 10 steps: the image count moves with the steps.
        let m = try model()
        let (x, y) = inputs(12)
        var c = PGDConfig(); c.epsilon = 0.1; c.stepSize = 0.02; c.steps = 10; c.restarts = 2; c.earlyStop = false
        var seen: [Int] = []
        let r = try Evaluation.run(m, attack: try PGD(config: c), images: x, labels: y, batchSize: 12, seed: 1) { seen.append($0) }
        XCTAssertEqual(seen, seen.sorted())
        XCTAssertEqual(seen.last, 12)
        XCTAssertGreaterThan(Set(seen.filter { $0 > 0 && $0 < 12 }).count, 5, "\(seen)")
        let quiet = try Evaluation.run(m, attack: try PGD(config: c), images: x, labels: y, batchSize: 12, seed: 1)
        XCTAssertEqual(r.adversarialPredictions, quiet.adversarialPredictions)
    }

    func testBadSettingsGetClearErrors() {
        func expect(_ edit: (inout PGDConfig) -> Void, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
            var c = PGDConfig(); edit(&c)
            XCTAssertThrowsError(try PGD(config: c), file: file, line: line) { XCTAssertTrue("\($0)".contains(text), "\($0)", file: file, line: line) }
        }
        expect({ $0.epsilon = -0.1 }, "--eps must be a non-negative number")
        expect({ $0.epsilon = 2 }, "above 1")
        expect({ $0.steps = 0 }, "--steps must be ≥ 1")
        expect({ $0.restarts = 0 }, "--restarts must be ≥ 1")
    }
}
