// Surrogate.swift: an attack crafted on another classifier than the one it is judged on: a
// transfer attack (crafted on the bare model, judged through a defense) or BPDA (crafted on the
// defense's straight-through view). It wraps the crafting classifier and inner attacks, run in
// order, each only on the rows the earlier ones have not broken on the crafting classifier.
import Foundation
import JEMCore

public struct Surrogate: ExampleAttack {
    public let name: String
    public let classifier: Classifier
    public let attacks: [ExampleAttack]
    public var norm: ThreatNorm { attacks[0].norm }
    public var epsilon: Float { attacks[0].epsilon }

    /// - Parameters:
    ///   - classifier: the model the points are crafted on.
    ///   - attacks: inner attacks (same norm and ε), run in order.
    public init(name: String, classifier: Classifier, attacks: [ExampleAttack]) throws {
        guard let first = attacks.first else { throw JEMError.invalidArgument("\(name): no inner attack") }
        guard attacks.allSatisfy({ $0.norm == first.norm && $0.epsilon == first.epsilon }) else {
            throw JEMError.invalidArgument("\(name): inner attacks must share one threat model")
        }
        self.name = name; self.classifier = classifier; self.attacks = attacks
    }

    public func perturb(_ model: Classifier, _ x: Tensor, labels: [Int], streams: inout [SeededRandom], modelRng: inout RowStreams) throws -> Tensor {
        let n = x.shape[0], per = x.count / max(n, 1)
        let out = x.copy()
        var pending = Array(0..<n)
        let parts = Double(attacks.count)
        for (k, a) in attacks.enumerated() {
            if pending.isEmpty { break }
            var sub = pending.map { streams[$0] }
            let y = pending.map { labels[$0] }
            let (adv, pred) = try AttackProgress.part(Double(k) / parts, Double(k + 1) / parts) {
                try modelRng.rows(pending) { rng in
                    let adv = try a.attack(classifier, x.gather(rows: pending), labels: y, streams: &sub, modelRng: &rng)
                    return (adv, try classifier.logits(adv, rng: &rng).argmaxRows())
                }
            }
            var still: [Int] = []
            for (j, r) in pending.enumerated() {
                streams[r] = sub[j]
                (out.data + r * per).update(from: adv.data + j * per, count: per)
                if pred[j] == y[j] { still.append(r) }
            }
            pending = still
        }
        return out
    }
}
