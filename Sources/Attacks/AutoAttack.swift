// AutoAttack.swift: the ensemble of Croce & Hein (ICML 2020). Each component runs only on the
// points every earlier component left robust; an example's result is the per-example worst case
// (robust only if no component broke it). A point is broken when the model, evaluated afresh on
// the projected adversarial, misclassifies it (a randomised model: in any of its evaluation runs). Random choices for example i come from streams keyed
// by (seed, i, component), so results do not depend on the batch size, the thread count or an
// interruption: the state after every batch can be saved and a killed run continued exactly.
import Foundation
import JEMCore

public enum AutoAttackComponent: String, Codable, CaseIterable, Sendable {
    case apgdCE = "apgd-ce", apgdT = "apgd-t", fabT = "fab-t", square, apgdDLR = "apgd-dlr"
}

public enum AutoAttackVersion: String, Codable, CaseIterable, Sendable {
    /// APGD-CE, APGD-T, FAB-T, Square (5 000 queries), for deterministic models.
    case standard
    /// APGD-CE and APGD-DLR with EOT 20, for randomised models.
    case rand
    /// A single component (the `apgd` and `square` commands).
    case custom
}

public struct AutoAttackConfig: Codable, Equatable, Sendable {
    public var version: AutoAttackVersion = .standard
    public var attacks: [AutoAttackComponent] = [.apgdCE, .apgdT, .fabT, .square]
    public var norm: ThreatNorm = .linf
    public var epsilon: Float = 8.0 / 255
    /// Iterations of APGD and FAB.
    public var iterations: Int = 100
    public var queries: Int = 5000
    /// Target classes of APGD-T and FAB-T; nil: min(9, K − 1).
    public var targetClasses: Int? = nil
    public var restarts: Int = 1
    public var eot: Int = 1
    public var pInit: Float = 0.8
    /// Square's schedule of p stretched to the query budget (SquareConfig.rescaleSchedule); nil or
    /// false: AutoAttack's fixed schedule. Optional so that configurations written before it existed
    /// (in --state fingerprints) read and compare unchanged.
    public var rescaleSchedule: Bool? = nil
    public var seed: UInt64 = 0

    public init() {}

    /// The standard or rand ensemble.
    public static func version(_ v: AutoAttackVersion, norm: ThreatNorm, epsilon: Float) -> AutoAttackConfig {
        var c = AutoAttackConfig()
        c.version = v; c.norm = norm; c.epsilon = epsilon
        if v == .rand { c.attacks = [.apgdCE, .apgdDLR]; c.eot = 20 }
        return c
    }

    public func validate(classes: Int) throws {
        guard epsilon.isFinite, epsilon > 0 else { throw JEMError.invalidArgument("--eps must be positive, got \(epsilon)") }
        if norm == .linf && epsilon > 1 { throw JEMError.invalidArgument("--eps \(epsilon) is above 1, the whole pixel range, for L∞") }
        guard !attacks.isEmpty else { throw JEMError.invalidArgument("--attacks names no attack") }
        for a in components(classes: classes) {
            switch a {
            case let p as APGD: try p.config.validate(classes: classes)
            case let f as FAB: try f.config.validate(classes: classes)
            case let s as Square: try s.config.validate()
            default: break
            }
        }
    }

    /// The target-class count for a K-class model.
    public func targets(classes: Int) -> Int { targetClasses ?? min(9, max(classes - 1, 1)) }

    /// The configured components, in order.
    public func components(classes: Int) -> [ExampleAttack] {
        attacks.map { a -> ExampleAttack in
            switch a {
            case .apgdCE, .apgdT, .apgdDLR:
                var c = APGDConfig()
                c.norm = norm; c.epsilon = epsilon; c.steps = iterations; c.restarts = restarts; c.eot = eot
                c.targetClasses = targets(classes: classes)
                c.loss = a == .apgdCE ? .ce : (a == .apgdT ? .dlrTargeted : .dlr)
                return APGD(config: c)
            case .fabT:
                var c = FABConfig()
                c.norm = norm; c.epsilon = epsilon; c.steps = iterations; c.targetClasses = targets(classes: classes)
                return FAB(config: c)
            case .square:
                var c = SquareConfig()
                c.norm = norm; c.epsilon = epsilon; c.queries = queries; c.pInit = pInit
                c.rescaleSchedule = rescaleSchedule ?? false
                return Square(config: c)
            }
        }
    }

    public var summary: String {
        let e = norm == .linf ? String(format: "%.4f (%.1f/255)", epsilon, epsilon * 255) : String(format: "%.4f", epsilon)
        var parts = ["\(norm == .linf ? "L∞" : "L2") ε=\(e)", attacks.map(\.rawValue).joined(separator: ", ")]
        if attacks.contains(where: { $0 != .square }) { parts.append("\(iterations) iterations") }
        if attacks.contains(.apgdT) || attacks.contains(.fabT) { parts.append("\(targetClasses.map(String.init) ?? "min(9, K−1)") target classes") }
        if attacks.contains(.square) { parts.append("\(queries) queries" + (rescaleSchedule == true ? " (p's schedule stretched to them)" : "")) }
        if restarts > 1 { parts.append("\(restarts) restarts") }
        if eot > 1 { parts.append("EOT \(eot)") }
        return "\(version.rawValue): " + parts.joined(separator: "; ")
    }
}

/// Everything needed to continue a run: per-example flags, finished components, the position in
/// the current one, and the adversarial points found so far. Written after every batch.
public struct AutoAttackState: Codable, Equatable {
    public struct Finished: Codable, Equatable {
        public var name: String
        public var robust: Int
        public var seconds: Double
    }
    /// What the run is about (model, data, ε, ...): a state from another run is refused.
    public var fingerprint: [String: String]
    public var cleanPredictions: [Int]
    public var robust: [Bool]
    public var brokenBy: [String?]
    public var adversarialPredictions: [Int]
    public var finished: [Finished] = []
    public var pending: [Int] = []
    public var position: Int = 0
    public var currentSeconds: Double = 0
    /// Seconds of the clean evaluation (nil in a state written before this was kept).
    public var cleanSeconds: Double? = nil
    /// Float32 rows of each attacked example's final point (its adversarial once broken, else its
    /// lowest-margin point so far), base64, by index.
    public var adversarials: [String: String] = [:]
    /// Clean accuracy of each evaluation run (one for a deterministic model).
    public var cleanRunAccuracies: [Double] = []
    /// Accuracy of each evaluation run on the final points.
    public var robustRunAccuracies: [Double] = []
    /// For each example, whether each evaluation run classified its final point correctly (the
    /// runs that judged it; nil in a state written before this was kept).
    public var latestRunCorrect: [[Bool]]? = nil
    /// For each attacked example, the margin (true-class logit minus the largest other, lowest over
    /// the runs that judged it) of its final point, and the attack that found that point: a later
    /// attack's point replaces it only with a lower margin (nil: written before this was kept).
    public var finalMargins: [Float?]? = nil
    public var finalBy: [String?]? = nil

    public var complete: Bool = false
}

public struct AutoAttackResult {
    public var labels: [Int]
    public var cleanPredictions: [Int]
    public var brokenBy: [String?]
    public var adversarialPredictions: [Int]
    public var perAttack: [AutoAttackState.Finished]
    /// The final points: the adversarial of each broken example, the point with the lowest margin
    /// (true-class logit minus the largest other) among the attacks' points for the others, the
    /// clean image where none was attacked.
    public var adversarials: Tensor
    public var cleanRunAccuracies: [Double]
    public var robustRunAccuracies: [Double]
    /// Seconds of the clean evaluation.
    public var cleanSeconds: Double

    public init(labels: [Int], cleanPredictions: [Int], brokenBy: [String?], adversarialPredictions: [Int], perAttack: [AutoAttackState.Finished],
                adversarials: Tensor, cleanRunAccuracies: [Double], robustRunAccuracies: [Double], cleanSeconds: Double = 0) {
        self.labels = labels; self.cleanPredictions = cleanPredictions; self.brokenBy = brokenBy
        self.adversarialPredictions = adversarialPredictions; self.perAttack = perAttack; self.adversarials = adversarials
        self.cleanRunAccuracies = cleanRunAccuracies; self.robustRunAccuracies = robustRunAccuracies; self.cleanSeconds = cleanSeconds
    }

    /// The clean evaluation's and every attack's seconds, summed over all the invocations of a
    /// resumed run (pauses between invocations not counted).
    public var seconds: Double { cleanSeconds + perAttack.reduce(0) { $0 + $1.seconds } }

    public var n: Int { labels.count }
    public var cleanAccuracy: Double { Double((0..<n).filter { cleanPredictions[$0] == labels[$0] }.count) / Double(max(n, 1)) }
    public var robustAccuracy: Double {
        Double((0..<n).filter { cleanPredictions[$0] == labels[$0] && brokenBy[$0] == nil }.count) / Double(max(n, 1))
    }
}

/// What identifies a run (model, data, settings) for `--state` files and the parts of a sharded run.
public enum RunFingerprint {
    /// The keys in which two runs' fingerprints differ. The model file's path ("model") may differ
    /// (another checkout, another machine of a sharded run) when its contents ("model_hash") do not.
    public static func differences(_ a: [String: String], _ b: [String: String]) -> [String] {
        Set(a.keys).union(b.keys).sorted().filter { key in
            a[key] != b[key] && !(key == "model" && a["model_hash"] != nil && a["model_hash"] == b["model_hash"])
        }
    }
}

public final class AutoAttackRunner {
    public let model: Classifier
    public let config: AutoAttackConfig
    public let images: Tensor
    public let labels: [Int]
    public let batchSize: Int
    /// Evaluation runs of a stochastic model: an example counts as correct only if every run
    /// classifies it correctly (the worst case over runs).
    public let evalRuns: Int
    /// Runs that judge each attack's points (≤ evalRuns); the final point of every attacked example
    /// then gets the remaining evalRuns − judgeRuns runs in the phase `finalRunsPhase`.
    public let judgeRuns: Int
    public let components: [ExampleAttack]
    /// The global index of each image: random streams are keyed by it (a shard passes its slice).
    public let indices: [Int]
    public private(set) var state: AutoAttackState

    /// - Parameters:
    ///   - resume: a saved state of this run (its fingerprint must equal `fingerprint`).
    public init(model: Classifier, config: AutoAttackConfig, images: Tensor, labels: [Int], batchSize: Int,
                evalRuns: Int = 1, judgeRuns: Int? = nil, components: [ExampleAttack]? = nil, indices: [Int]? = nil,
                fingerprint: [String: String], resume: AutoAttackState? = nil) throws {
        guard batchSize >= 1 else { throw JEMError.invalidArgument("--batch-size must be ≥ 1, got \(batchSize)") }
        guard images.shape.count == 4, images.shape[0] == labels.count else {
            throw JEMError.invalidArgument("\(images.shape.first ?? 0) images but \(labels.count) labels")
        }
        guard !labels.isEmpty else { throw JEMError.invalidArgument("no images to attack (0 selected)") }
        guard evalRuns >= 1 else { throw JEMError.invalidArgument("--eval-runs must be ≥ 1, got \(evalRuns)") }
        if let j = judgeRuns, !(1...evalRuns).contains(j) {
            throw JEMError.invalidArgument("--judge-runs must be in 1...\(evalRuns) (--eval-runs), got \(j)")
        }
        // The config's ensemble must name an attack; an explicit empty list only evaluates (a curve's ε = 0).
        if components == nil { try config.validate(classes: model.numClasses) }
        self.components = components ?? config.components(classes: model.numClasses)
        self.model = model; self.config = config; self.images = images; self.labels = labels
        self.batchSize = batchSize; self.evalRuns = evalRuns; self.judgeRuns = judgeRuns ?? evalRuns
        self.indices = indices ?? Array(0..<labels.count)
        guard self.indices.count == labels.count else { throw JEMError.invalidArgument("\(self.indices.count) example indices for \(labels.count) images") }
        if let s = resume {
            try AutoAttackRunner.check(s, against: fingerprint, n: labels.count)
            state = s
        } else {
            state = AutoAttackState(fingerprint: fingerprint, cleanPredictions: [], robust: [], brokenBy: [], adversarialPredictions: [])
        }
    }

    static func check(_ s: AutoAttackState, against fp: [String: String], n: Int) throws {
        for key in RunFingerprint.differences(fp, s.fingerprint) {
            throw JEMError.invalidArgument("--state was written by a different run: its \(key) is \(s.fingerprint[key] ?? "missing"), this run's is \(fp[key] ?? "missing")")
        }
        guard s.cleanPredictions.isEmpty || (s.cleanPredictions.count == n && s.robust.count == n && s.brokenBy.count == n
                                             && s.adversarialPredictions.count == n) else {
            throw JEMError.invalidArgument("--state holds \(s.cleanPredictions.count) examples, this run has \(n)")
        }
    }

    /// Predictions of `runs` evaluation runs (default: all of a stochastic model's, one for a
    /// deterministic one), run-major; `done` gets the share of the runs finished after each one.
    func predictions(_ x: Tensor, runs: Int? = nil, rng: inout RowStreams, done: (Double) -> Void = { _ in }) throws -> [[Int]] {
        try judged(x, labels: nil, runs: runs, rng: &rng, done: done).predictions
    }

    /// `predictions`, and with `labels` each row's lowest margin over the runs (true-class logit
    /// minus the largest other).
    func judged(_ x: Tensor, labels: [Int]?, runs: Int? = nil, rng: inout RowStreams,
                done: (Double) -> Void = { _ in }) throws -> (predictions: [[Int]], margins: [Float]) {
        let runs = model.isStochastic ? (runs ?? evalRuns) : 1
        var margins = [Float](repeating: .infinity, count: x.shape[0])
        let p = try (0..<runs).map { r -> [Int] in
            let z = try model.logits(x, rng: &rng)
            if let labels { margins = zip(margins, Square.margins(z, labels: labels)).map { min($0, $1) } }
            done(Double(r + 1) / Double(runs))
            return z.argmaxRows()
        }
        return (p, margins)
    }

    /// The name of the phase that gives the final points their remaining evaluation runs.
    public static let finalRunsPhase = "final-runs"

    /// Whether this run has a final-runs phase: a stochastic model judged by fewer runs per attack.
    var hasFinalRuns: Bool { model.isStochastic && judgeRuns < evalRuns && !components.isEmpty }

    /// A stochastic model's noise for the examples `rows` (indices into this run's images).
    func modelStreams<S: Sequence>(_ rows: S, _ purpose: String) -> RowStreams where S.Element == Int {
        RowStreams(seed: config.seed, examples: rows.map { indices[$0] }, purpose: "model/" + purpose)
    }

    /// The name `run` reports the clean evaluation under (its fourth value: examples misclassified so far).
    public static let cleanPhase = "clean evaluation"

    /// Runs (or continues) the ensemble.
    /// - Parameters:
    ///   - progress: (component, attacked so far, to attack, broken so far by it).
    ///   - checkpoint: called with the state after every batch (to save it).
    public func run(progress: (String, Int, Int, Int) -> Void = { _, _, _, _ in },
                    checkpoint: (AutoAttackState) throws -> Void = { _ in }) throws -> AutoAttackResult {
        let n = labels.count, per = images.count / n
        let wasInvariant = Runtime.batchInvariant
        Runtime.batchInvariant = true
        defer { Runtime.batchInvariant = wasInvariant }
        if state.cleanPredictions.isEmpty {
            var runs: [[Int]] = []
            var s = 0, wrong = 0
            let t0 = Date()
            progress(AutoAttackRunner.cleanPhase, 0, n, 0)
            while s < n {
                let m = min(batchSize, n - s)
                var rng = modelStreams(s..<(s + m), "clean")
                // A defense's clean evaluation takes minutes per batch (runs × chains × SGLD steps):
                // the count moves as its runs finish.
                let p = try predictions(images.rows(s, m), rng: &rng) { f in
                    if f < 1 { progress(AutoAttackRunner.cleanPhase, s + Int(f * Double(m)), n, wrong) }
                }
                if runs.isEmpty { runs = Array(repeating: [], count: p.count) }
                for r in 0..<p.count { runs[r] += p[r] }
                wrong += (s..<(s + m)).filter { i in p.contains { $0[i - s] != labels[i] } }.count
                s += m
                progress(AutoAttackRunner.cleanPhase, s, n, wrong)
            }
            state.cleanRunAccuracies = runs.map { p in Double((0..<n).filter { p[$0] == labels[$0] }.count) / Double(n) }
            // The first run's predictions are reported; an example enters the attacks only if every run is right.
            state.cleanPredictions = (0..<n).map { i in runs.first { $0[i] != labels[i] }?[i] ?? runs[0][i] }
            state.robust = (0..<n).map { state.cleanPredictions[$0] == labels[$0] }
            state.brokenBy = Array(repeating: nil, count: n)
            state.adversarialPredictions = state.cleanPredictions
            state.latestRunCorrect = (0..<n).map { i in runs.map { $0[i] == labels[i] } }
            state.cleanSeconds = Date().timeIntervalSince(t0)
            try checkpoint(state)
        }
        if state.finalMargins == nil { state.finalMargins = Array(repeating: nil, count: n); state.finalBy = Array(repeating: nil, count: n) }
        for attack in components.dropFirst(state.finished.count) {
            try runPhase(attack.name, entering: { state.robust[$0] }, brokenBefore: { state.pending[..<state.position].filter { state.brokenBy[$0] == attack.name }.count },
                         progress: progress, checkpoint: checkpoint) { idx, brokenSoFar in
                let x = images.gather(rows: idx), y = idx.map { labels[$0] }
                var streams = idx.map { ExampleStreams.stream(seed: config.seed, example: indices[$0], purpose: attack.name) }
                var rng = modelStreams(idx, attack.name)
                // Inside a batch (minutes for APGD-T or Square on robust points), the share of the
                // attack's work done moves the count of attacked points.
                let (before, total) = (state.position, state.pending.count)
                let xa = try withoutActuallyEscaping(progress) { report in
                    try AttackProgress.observe({ f in report(attack.name, before + Int(f * Double(idx.count)), total, brokenSoFar) }) {
                        try attack.attack(model, x, labels: y, streams: &streams, modelRng: &rng)
                    }
                }
                let (runs, margins) = try judged(xa, labels: y, runs: judgeRuns, rng: &rng)
                var broken = 0
                for (j, i) in idx.enumerated() {
                    let wrong = runs.first(where: { $0[j] != labels[i] })
                    // An example keeps its most adversarial point (lowest margin) as its final point.
                    if wrong == nil, let m = state.finalMargins?[i] ?? nil, !(margins[j] < m) { continue }
                    state.adversarials[String(i)] = Data(bytes: xa.data + j * per, count: per * 4).base64EncodedString()
                    state.latestRunCorrect?[i] = runs.map { $0[j] == labels[i] }
                    state.finalMargins?[i] = margins[j]; state.finalBy?[i] = attack.name
                    guard let wrong else { continue }
                    state.robust[i] = false
                    state.brokenBy[i] = attack.name
                    state.adversarialPredictions[i] = wrong[j]
                    broken += 1
                }
                return broken
            }
        }
        if hasFinalRuns && state.finished.count == components.count { try finalRuns(progress: progress, checkpoint: checkpoint) }
        if state.robustRunAccuracies.isEmpty {
            // Accuracy per evaluation run on the final points: the runs that judged each example's
            // final point (its clean image, or its lowest-margin attack point) are these runs, so a robust
            // example is correct in every one and no fresh runs are needed (mean ≥ worst case).
            guard let latest = state.latestRunCorrect, latest.count == n else {
                throw JEMError.invalidArgument("--state was written by an earlier version of robust-eval (no per-run results); run again without it")
            }
            let runs = latest.first?.count ?? 1
            state.robustRunAccuracies = (0..<runs).map { r in
                Double((0..<n).filter { state.cleanPredictions[$0] == labels[$0] && latest[$0][r] }.count) / Double(n)
            }
        }
        state.complete = true
        try checkpoint(state)
        return try result()
    }

    /// The remaining evaluation runs on the final point of every example that entered the attacks:
    /// a robust example is broken if any of them misclassifies it (credited to the attack that found
    /// the point). Afterwards every final point has been judged by all `evalRuns` runs.
    func finalRuns(progress: (String, Int, Int, Int) -> Void, checkpoint: (AutoAttackState) throws -> Void) throws {
        let n = labels.count
        guard let latest = state.latestRunCorrect, let by = state.finalBy, latest.count == n, by.count == n else {
            throw JEMError.invalidArgument("--state was written by an earlier version of robust-eval (no final points); run again without it")
        }
        let points = try finalPoints()
        try runPhase(AutoAttackRunner.finalRunsPhase, entering: { latest[$0].count < evalRuns },
                     brokenBefore: { (state.finished.last?.robust ?? 0) - state.robust.filter { $0 }.count },
                     progress: progress, checkpoint: checkpoint) { idx, _ in
            var rng = modelStreams(idx, AutoAttackRunner.finalRunsPhase)
            let runs = try predictions(points.gather(rows: idx), runs: evalRuns - judgeRuns, rng: &rng)
            var broken = 0
            for (j, i) in idx.enumerated() {
                state.latestRunCorrect?[i] += runs.map { $0[j] == labels[i] }
                guard state.robust[i], let wrong = runs.first(where: { $0[j] != labels[i] }) else { continue }
                state.robust[i] = false
                state.brokenBy[i] = by[i]
                state.adversarialPredictions[i] = wrong[j]
                broken += 1
            }
            return broken
        }
    }

    /// One resumable phase (an attack, or the final runs) over the examples `entering` admits: the
    /// list and the position in it live in the state, saved after every batch; `batch` handles the
    /// examples `idx` (given the count broken so far) and returns how many more it broke; the
    /// phase's row (robust count, seconds) is appended at the end.
    func runPhase(_ name: String, entering: (Int) -> Bool, brokenBefore: () -> Int, progress: (String, Int, Int, Int) -> Void,
                  checkpoint: (AutoAttackState) throws -> Void, batch: ([Int], Int) throws -> Int) throws {
        if state.position == 0 && state.pending.isEmpty { state.pending = (0..<labels.count).filter(entering) }
        var broken = brokenBefore()
        progress(name, state.position, state.pending.count, broken)
        while state.position < state.pending.count {
            let t0 = Date()
            let idx = Array(state.pending[state.position..<min(state.position + batchSize, state.pending.count)])
            broken += try batch(idx, broken)
            state.position += idx.count
            state.currentSeconds += Date().timeIntervalSince(t0)
            try checkpoint(state)
            progress(name, state.position, state.pending.count, broken)
        }
        state.finished.append(.init(name: name, robust: state.robust.filter { $0 }.count, seconds: state.currentSeconds))
        state.pending = []; state.position = 0; state.currentSeconds = 0
        try checkpoint(state)
    }

    /// The final points held by the state: the clean image where no attack has run.
    func finalPoints() throws -> Tensor {
        let n = labels.count, per = images.count / n
        let adv = images.copy()
        for (k, v) in state.adversarials {
            guard let i = Int(k), i >= 0, i < n, let d = Data(base64Encoded: v), d.count == per * 4 else {
                throw JEMError.invalidArgument("--state holds a malformed adversarial row '\(k)'")
            }
            d.withUnsafeBytes { (adv.data + i * per).update(from: $0.bindMemory(to: Float.self).baseAddress!, count: per) }
        }
        return adv
    }

    /// The result held by the state (complete or not).
    public func result() throws -> AutoAttackResult {
        let adv = try finalPoints()
        return AutoAttackResult(labels: labels, cleanPredictions: state.cleanPredictions, brokenBy: state.brokenBy,
                                adversarialPredictions: state.adversarialPredictions, perAttack: state.finished, adversarials: adv,
                                cleanRunAccuracies: state.cleanRunAccuracies, robustRunAccuracies: state.robustRunAccuracies,
                                cleanSeconds: state.cleanSeconds ?? 0)
    }
}
