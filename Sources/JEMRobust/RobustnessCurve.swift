// RobustnessCurve.swift: robust accuracy against ε for one classifier. ε values are visited in
// increasing order and an example broken at a smaller ε counts as broken at every larger one, so a
// curve never rises with ε (the per-example worst case over all attacks run).
import Attacks
import Foundation
import JEMCore

public struct CurvePoint: Codable, Sendable {
    public var eps: Double
    public var accuracy: Double
    public var n: Int
    /// How many examples were attacked at this ε: those still robust at every smaller ε.
    public var attacked: Int
}

public enum RobustnessCurve {
    /// - Parameters:
    ///   - template: the attack settings; its step size is scaled with ε (step/ε is kept).
    public static func run(_ model: Classifier, epsilons: [Float], template: PGDConfig, images: Tensor, labels: [Int],
                           batchSize: Int, seed: UInt64, evalRuns: Int = 1, progress: (Int) -> Void = { _ in }) throws -> [CurvePoint] {
        guard !epsilons.isEmpty else { throw JEMError.invalidArgument("--eps needs at least one value") }
        for i in 1..<epsilons.count where !(epsilons[i] > epsilons[i - 1]) {
            throw JEMError.invalidArgument("--eps values must be strictly increasing; \(epsilons[i]) follows \(epsilons[i - 1])")
        }
        let ratio = template.epsilon > 0 ? template.stepSize / template.epsilon : 0.25
        var robust = [Bool](repeating: true, count: labels.count)
        var out: [CurvePoint] = []
        for (k, e) in epsilons.enumerated() {
            var c = template
            c.epsilon = e; c.stepSize = ratio * e
            // Only the examples that survived every smaller ε are attacked: the others count as
            // broken whatever happens, so attacking them again would change nothing but the cost.
            let alive = robust.indices.filter { robust[$0] }
            if !alive.isEmpty {
                let all = alive.count == labels.count
                let r = try Evaluation.run(model, attack: try PGD(config: c), images: all ? images : images.gather(rows: alive),
                                           labels: all ? labels : alive.map { labels[$0] }, batchSize: batchSize,
                                           seed: seed &+ UInt64(k), indices: alive, evalRuns: evalRuns, targeted: c.targeted)
                for (j, i) in alive.enumerated() { robust[i] = r.robustCorrect[j] }
            }
            out.append(CurvePoint(eps: Double(e), accuracy: Double(robust.filter { $0 }.count) / Double(max(labels.count, 1)),
                                  n: labels.count, attacked: alive.count))
            progress(k + 1)
        }
        return out
    }
}
