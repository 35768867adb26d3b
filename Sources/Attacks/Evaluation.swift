// Evaluation.swift: clean and robust accuracy of a classifier under an attack over a data set,
// in batches, with per-example results. An example is robust when it is classified correctly both
// clean and after the attack. Stochastic classifiers' predictions average the logits of
// `evalRuns` independent runs (reported as such).
import Foundation
import JEMCore

public struct RobustnessResult: Sendable {
    public var labels: [Int]
    public var cleanPredictions: [Int]
    public var adversarialPredictions: [Int]
    public var perturbationNorms: [Float]
    public var seconds: Double

    public init(labels: [Int], cleanPredictions: [Int], adversarialPredictions: [Int], perturbationNorms: [Float], seconds: Double) {
        self.labels = labels; self.cleanPredictions = cleanPredictions; self.adversarialPredictions = adversarialPredictions
        self.perturbationNorms = perturbationNorms; self.seconds = seconds
    }

    public var n: Int { labels.count }
    public var cleanCorrect: [Bool] { zip(cleanPredictions, labels).map { $0 == $1 } }
    public var robustCorrect: [Bool] { (0..<n).map { cleanPredictions[$0] == labels[$0] && adversarialPredictions[$0] == labels[$0] } }
    public var cleanAccuracy: Double { Double(cleanCorrect.filter { $0 }.count) / Double(max(n, 1)) }
    public var robustAccuracy: Double { Double(robustCorrect.filter { $0 }.count) / Double(max(n, 1)) }
}

public enum Evaluation {
    /// Predictions with logits averaged over `runs` runs (1 for deterministic classifiers).
    public static func predict(_ model: Classifier, _ x: Tensor, runs: Int, rng: inout RowStreams) throws -> [Int] {
        let r = model.isStochastic ? max(runs, 1) : 1
        let z = try model.logits(x, rng: &rng)
        for _ in 1..<max(r, 1) {
            let z2 = try model.logits(x, rng: &rng)
            for i in 0..<z.count { z.data[i] += z2.data[i] }
        }
        return z.argmaxRows()
    }

    /// Logits of a whole set in batches (one draw of a stochastic classifier's randomness each,
    /// example i's from the stream keyed by (seed, firstIndex + i, purpose)).
    public static func logits(_ model: Classifier, _ x: Tensor, batchSize: Int, seed: UInt64, firstIndex: Int = 0,
                              purpose: String = "model/logits") throws -> Tensor {
        let wasInvariant = Runtime.batchInvariant
        Runtime.batchInvariant = true
        defer { Runtime.batchInvariant = wasInvariant }
        var parts: [Tensor] = []
        var s = 0
        while s < x.shape[0] {
            let m = min(batchSize, x.shape[0] - s)
            var rng = RowStreams(seed: seed, examples: (firstIndex + s)..<(firstIndex + s + m), purpose: purpose)
            parts.append(try model.logits(x.rows(s, m), rng: &rng))
            s += m
        }
        return try Tensor.concat(parts)
    }

    /// A random target t ≠ y for example i, from its own stream.
    public static func randomTarget(label y: Int, classes: Int, seed: UInt64, example i: Int) -> Int {
        var rng = ExampleStreams.stream(seed: seed, example: i, purpose: "targets")
        return (y + 1 + Int(rng.next() % UInt64(classes - 1))) % classes
    }

    /// Runs `attack` on every batch of `data`. Example i's random choices (start, restarts, target,
    /// a stochastic model's noise) come from streams keyed by (seed, firstIndex + i, purpose), so
    /// the result of an example does not depend on the batch size, the thread count or the shard.
    /// - Parameters:
    ///   - indices: the global index of each image (default 0..<n; a shard passes its slice, the
    ///     curve the survivors of the previous ε).
    ///   - adversarials: if given, receives the adversarial examples (same order as the data).
    ///   - progress: called with the number of examples done.
    public static func run(_ model: Classifier, attack: Attack, images: Tensor, labels: [Int], batchSize: Int,
                           seed: UInt64, indices: [Int]? = nil, evalRuns: Int = 1, targeted: Bool = false,
                           adversarials: Tensor? = nil, progress: (Int) -> Void = { _ in }) throws -> RobustnessResult {
        guard batchSize >= 1 else { throw JEMError.invalidArgument("--batch-size must be ≥ 1, got \(batchSize)") }
        let n = labels.count
        guard images.shape.count == 4, images.shape[0] == n else {
            throw JEMError.invalidArgument("\(images.shape.first ?? 0) images but \(n) labels")
        }
        let gid = indices ?? Array(0..<n)
        guard gid.count == n else { throw JEMError.invalidArgument("\(gid.count) example indices for \(n) images") }
        let wasInvariant = Runtime.batchInvariant
        Runtime.batchInvariant = true
        defer { Runtime.batchInvariant = wasInvariant }
        var clean: [Int] = [], adv: [Int] = [], norms: [Float] = []
        let t0 = Date()
        var start = 0
        while start < n {
            let m = min(batchSize, n - start)
            let ids = gid[start..<(start + m)]
            let x = images.rows(start, m)
            let y = Array(labels[start..<(start + m)])
            var cleanRng = RowStreams(seed: seed, examples: ids, purpose: "model/clean")
            clean += try predict(model, x, runs: evalRuns, rng: &cleanRng)
            let targets = targeted ? zip(y, ids).map { randomTarget(label: $0, classes: model.numClasses, seed: seed, example: $1) } : nil
            var streams = ids.map { ExampleStreams.stream(seed: seed, example: $0, purpose: "attack") }
            var rng = RowStreams(seed: seed, examples: ids, purpose: "model/attack")
            let before = start
            let xa = try withoutActuallyEscaping(progress) { report in
                try AttackProgress.observe({ report(before + Int($0 * Double(m))) }) {
                    try attack.attack(model, x, labels: y, targets: targets, streams: &streams, modelRng: &rng)
                }
            }
            var advRng = RowStreams(seed: seed, examples: ids, purpose: "model/adversarial")
            adv += try predict(model, xa, runs: evalRuns, rng: &advRng)
            norms += Projection.norms(xa, x, norm: attack.norm)
            adversarials?.setRows(start, xa)
            start += m
            progress(start)
        }
        return RobustnessResult(labels: labels, cleanPredictions: clean, adversarialPredictions: adv,
                                perturbationNorms: norms, seconds: Date().timeIntervalSince(t0))
    }
}
