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

/// A check's count over the points it looked at: how many it checked and how many showed the
/// sign. Counts add up across shards, so a sharded run raises exactly the flags of a single one.
public struct CheckTally: Codable, Equatable, Sendable {
    public var checked: Int
    public var hits: Int
    public init(checked: Int = 0, hits: Int = 0) { self.checked = checked; self.hits = hits }
    public static func + (a: CheckTally, b: CheckTally) -> CheckTally { CheckTally(checked: a.checked + b.checked, hits: a.hits + b.hits) }
}

public enum MaskingChecks {
    /// The large-ε check looks at the correctly classified points among the first 32 images, the
    /// randomness check at the first 16 (global indices, so shards agree with a single run).
    public static let largeEpsilonImages = 32
    public static let randomnessImages = 16

    /// Points broken by the black-box component after every white-box one had run.
    public static func blackBoxBreaks(brokenBy: [String?], attacks: [String], whiteBoxRan: Bool) -> MaskingFlag? {
        guard whiteBoxRan, attacks.contains("square") else { return nil }
        let k = brokenBy.filter { $0 == "square" }.count
        return MaskingFlag(name: "black_box_beats_white_box", triggered: k > 0,
                           detail: k > 0 ? "Square broke \(k) point(s) that the gradient attacks missed: gradients may be masked"
                                         : "Square broke no point that the gradient attacks missed")
    }

    /// APGD-CE at L∞ ε = 0.5 on the images x (global indices `indices`): of those classified
    /// correctly, how many stay robust (expected 0).
    public static func largeEpsilon(_ model: Classifier, images x: Tensor, labels y: [Int], indices: [Int], seed: UInt64, evalRuns: Int) throws -> CheckTally {
        guard !indices.isEmpty else { return CheckTally() }
        var c = APGDConfig()
        c.norm = .linf; c.epsilon = 0.5; c.steps = 20
        let attack = APGD(config: c)
        var streams = indices.map { ExampleStreams.stream(seed: seed, example: $0, purpose: "check/large-eps") }
        var rng = RowStreams(seed: seed, examples: indices, purpose: "model/check/large-eps")
        let clean = try Evaluation.predict(model, x, runs: evalRuns, rng: &rng)
        let xa = try attack.attack(model, x, labels: y, streams: &streams, modelRng: &rng)
        let adv = try Evaluation.predict(model, xa, runs: evalRuns, rng: &rng)
        let correct = (0..<indices.count).filter { clean[$0] == y[$0] }
        return CheckTally(checked: correct.count, hits: correct.filter { adv[$0] == y[$0] }.count)
    }

    public static func largeEpsilonFlag(_ t: CheckTally) -> MaskingFlag {
        MaskingFlag(name: "large_eps_not_zero", triggered: t.hits > 0,
                    detail: "APGD-CE (20 steps) at L∞ ε = 0.5 left \(t.hits) of \(t.checked) correctly classified points robust (expected 0)")
    }

    /// How many of the images x (global indices `indices`) have a cross-entropy input gradient of exactly zero.
    public static func zeroGradients(_ model: Classifier, images x: Tensor, labels: [Int], indices: [Int], batchSize: Int, seed: UInt64) throws -> CheckTally {
        let n = indices.count, per = x.count / max(x.shape[0], 1)
        var zero = 0, s = 0
        while s < n {
            let m = min(batchSize, n - s)
            let y = Array(labels[s..<(s + m)])
            var rng = RowStreams(seed: seed, examples: indices[s..<(s + m)], purpose: "model/check/gradients")
            let (_, g) = try model.inputGradient(x.rows(s, m), rng: &rng) { AttackObjective.ce.evaluate($0, labels: y, targets: nil).gradient }
            for j in 0..<m where !(0..<per).contains(where: { g.data[j * per + $0] != 0 }) { zero += 1 }
            s += m
        }
        return CheckTally(checked: n, hits: zero)
    }

    public static func zeroGradientsFlag(_ t: CheckTally) -> MaskingFlag {
        MaskingFlag(name: "zero_gradients", triggered: t.hits > 0, detail: "\(t.hits) of \(t.checked) points have an input gradient of exactly zero")
    }

    /// How many of the images x (global indices `indices`) get different logits from two evaluations.
    public static func randomness(_ model: Classifier, images x: Tensor, indices: [Int], seed: UInt64) throws -> CheckTally {
        guard !indices.isEmpty else { return CheckTally() }
        var r1 = RowStreams(seed: seed, examples: indices, purpose: "check/random/1")
        var r2 = RowStreams(seed: seed, examples: indices, purpose: "check/random/2")
        let a = try model.logits(x, rng: &r1), b = try model.logits(x, rng: &r2)
        let k = a.shape[1]
        let differ = (0..<indices.count).filter { r in (0..<k).contains { a.data[r * k + $0] != b.data[r * k + $0] } }.count
        return CheckTally(checked: indices.count, hits: differ)
    }

    public static func randomnessFlag(_ t: CheckTally, stochastic: Bool) -> MaskingFlag {
        let differs = stochastic || t.hits > 0
        return MaskingFlag(name: "randomized_output", triggered: differs,
                           detail: differs ? "the model's output depends on randomness: use --version rand (EOT)"
                                           : "the model's output is deterministic")
    }
}
