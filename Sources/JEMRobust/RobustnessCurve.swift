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
    /// The curve of per-example results (robust[k][i]: example i robust at every ε up to ε_k).
    public static func points(_ robust: [[Bool]], epsilons: [Float]) -> [CurvePoint] {
        robust.enumerated().map { k, r in
            CurvePoint(eps: Double(epsilons[k]), accuracy: Double(r.filter { $0 }.count) / Double(max(r.count, 1)), n: r.count,
                       attacked: k == 0 ? r.count : robust[k - 1].filter { $0 }.count)
        }
    }

    /// - Parameters:
    ///   - template: the attack settings; its step size is scaled with ε (step/ε is kept).
    public static func run(_ model: Classifier, epsilons: [Float], template: PGDConfig, images: Tensor, labels: [Int],
                           batchSize: Int, seed: UInt64, evalRuns: Int = 1, progress: (Int) -> Void = { _ in }) throws -> [CurvePoint] {
        points(try perExample(model, epsilons: epsilons, template: template, images: images, labels: labels, batchSize: batchSize,
                              seed: seed, evalRuns: evalRuns, progress: progress), epsilons: epsilons)
    }

    /// Per ε, which examples are robust at it and every smaller one, under PGD with `template`'s
    /// settings (step/ε kept). Example i's random choices are keyed by `indices[i]` (its index in
    /// the whole selection; default i).
    public static func perExample(_ model: Classifier, epsilons: [Float], template: PGDConfig, images: Tensor, labels: [Int],
                                  indices: [Int]? = nil, batchSize: Int, seed: UInt64, evalRuns: Int = 1,
                                  progress: (Int) -> Void = { _ in }) throws -> [[Bool]] {
        let gid = indices ?? Array(0..<labels.count)
        let ratio = template.epsilon > 0 ? template.stepSize / template.epsilon : 0.25
        return try perExample(epsilons: epsilons, count: labels.count, progress: progress) { k, e, alive in
            var c = template
            c.epsilon = e; c.stepSize = ratio * e
            let all = alive.count == labels.count
            let r = try Evaluation.run(model, attack: try PGD(config: c), images: all ? images : images.gather(rows: alive),
                                       labels: all ? labels : alive.map { labels[$0] }, batchSize: batchSize,
                                       seed: seed &+ UInt64(k), indices: alive.map { gid[$0] }, evalRuns: evalRuns, targeted: c.targeted)
            return r.robustCorrect
        }
    }

    /// The one loop over ε: `robustAt(k, ε_k, alive)` attacks the examples `alive` (indices into
    /// the set, those robust at every smaller ε) at ε_k and says which of them stay robust.
    public static func perExample(epsilons: [Float], count: Int, progress: (Int) -> Void = { _ in },
                                  robustAt: (Int, Float, [Int]) throws -> [Bool]) throws -> [[Bool]] {
        guard !epsilons.isEmpty else { throw JEMError.invalidArgument("--eps needs at least one value") }
        for i in 1..<epsilons.count where !(epsilons[i] > epsilons[i - 1]) {
            throw JEMError.invalidArgument("--eps values must be strictly increasing; \(epsilons[i]) follows \(epsilons[i - 1])")
        }
        var robust = [Bool](repeating: true, count: count)
        var out: [[Bool]] = []
        for (k, e) in epsilons.enumerated() {
            // Only the examples that survived every smaller ε are attacked: the others count as
            // broken whatever happens, so attacking them again would change nothing but the cost.
            let alive = robust.indices.filter { robust[$0] }
            if !alive.isEmpty {
                let r = try robustAt(k, e, alive)
                for (j, i) in alive.enumerated() { robust[i] = r[j] }
            }
            out.append(robust)
            progress(k + 1)
        }
        return out
    }
}
