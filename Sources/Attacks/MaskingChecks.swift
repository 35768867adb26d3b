// MaskingChecks.swift: the signs that a robust accuracy is an artefact of gradient masking rather
// than robustness (AutoAttack's checks and the "indicators of attack failure"): the gradient-free
// Square breaking points the white-box attacks missed, robust accuracy not reaching ~0 at an ε
// large enough to turn any image into another, gradients that are exactly zero, and outputs that
// depend on randomness (then the deterministic ensemble is the wrong one).
import Foundation
import JEMCore

public struct MaskingFlag: Codable, Equatable, Sendable {
    public var name: String
    public var triggered: Bool
    public var detail: String

    public init(name: String, triggered: Bool, detail: String) {
        self.name = name; self.triggered = triggered; self.detail = detail
    }
}

public enum MaskingChecks {
    /// Points broken by the black-box component after every white-box one had run.
    public static func blackBoxBreaks(_ r: AutoAttackResult, whiteBoxRan: Bool) -> MaskingFlag? {
        guard whiteBoxRan, r.perAttack.contains(where: { $0.name == "square" }) else { return nil }
        let k = r.brokenBy.filter { $0 == "square" }.count
        return MaskingFlag(name: "black_box_beats_white_box", triggered: k > 0,
                           detail: k > 0 ? "Square broke \(k) point(s) that the gradient attacks missed: gradients may be masked"
                                         : "Square broke no point that the gradient attacks missed")
    }

    /// APGD-CE at L∞ ε = 0.5 on `rows`: robust accuracy should be 0.
    public static func largeEpsilon(_ model: Classifier, images: Tensor, labels: [Int], rows: [Int], seed: UInt64, evalRuns: Int) throws -> MaskingFlag {
        var c = APGDConfig()
        c.norm = .linf; c.epsilon = 0.5; c.steps = 20
        let attack = APGD(config: c)
        let x = images.gather(rows: rows), y = rows.map { labels[$0] }
        var streams = rows.map { ExampleStreams.stream(seed: seed, example: $0, purpose: "check/large-eps") }
        var rng = RowStreams(seed: seed, examples: rows, purpose: "model/check/large-eps")
        let clean = try Evaluation.predict(model, x, runs: evalRuns, rng: &rng)
        let xa = try attack.attack(model, x, labels: y, streams: &streams, modelRng: &rng)
        let adv = try Evaluation.predict(model, xa, runs: evalRuns, rng: &rng)
        let correct = (0..<rows.count).filter { clean[$0] == y[$0] }
        let survived = correct.filter { adv[$0] == y[$0] }.count
        return MaskingFlag(name: "large_eps_not_zero", triggered: survived > 0,
                           detail: "APGD-CE (20 steps) at L∞ ε = 0.5 left \(survived) of \(correct.count) correctly classified points robust (expected 0)")
    }

    /// Rows whose cross-entropy input gradient is exactly zero.
    public static func zeroGradients(_ model: Classifier, images: Tensor, labels: [Int], rows: [Int], batchSize: Int, seed: UInt64) throws -> MaskingFlag {
        let per = images.count / max(images.shape[0], 1)
        var zero = 0, s = 0
        while s < rows.count {
            let idx = Array(rows[s..<min(s + batchSize, rows.count)])
            let y = idx.map { labels[$0] }
            var rng = RowStreams(seed: seed, examples: idx, purpose: "model/check/gradients")
            let (_, g) = try model.inputGradient(images.gather(rows: idx), rng: &rng) { AttackObjective.ce.evaluate($0, labels: y, targets: nil).gradient }
            for j in 0..<idx.count where !(0..<per).contains(where: { g.data[j * per + $0] != 0 }) { zero += 1 }
            s += idx.count
        }
        return MaskingFlag(name: "zero_gradients", triggered: zero > 0,
                           detail: "\(zero) of \(rows.count) points have an input gradient of exactly zero")
    }

    /// Whether two evaluations of the same inputs differ.
    public static func randomness(_ model: Classifier, images: Tensor, seed: UInt64) throws -> MaskingFlag {
        let n = images.shape[0]
        var r1 = RowStreams(seed: seed, examples: 0..<n, purpose: "check/random/1")
        var r2 = RowStreams(seed: seed, examples: 0..<n, purpose: "check/random/2")
        let a = try model.logits(images, rng: &r1), b = try model.logits(images, rng: &r2)
        let differs = model.isStochastic || (0..<a.count).contains { a.data[$0] != b.data[$0] }
        return MaskingFlag(name: "randomized_output", triggered: differs,
                           detail: differs ? "the model's output depends on randomness: use --version rand (EOT)"
                                           : "the model's output is deterministic")
    }
}
