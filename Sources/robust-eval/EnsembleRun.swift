// EnsembleRun.swift: what `autoattack`, `apgd` and `square` share: the output flags, the state file,
// the masking checks, and the report (table, JSON, per-example CSV, adversarial set). Each command
// builds an `AutoAttackConfig` and calls `runEnsemble` once.
import ArgumentParser
import Attacks
import Foundation
import JEMCore

extension AutoAttackVersion: ExpressibleByArgument {}
extension APGDLoss: ExpressibleByArgument {}

struct EnsembleOutputOptions: ParsableArguments {
    @Option(name: .long, help: "Write the report as JSON.") var json: String?
    @Option(name: .long, help: "Write per-example results as CSV (index,label,clean_prediction,broken_by,adversarial_prediction).") var perExample: String?
    @Option(name: .long, help: "Save the worst-case points (float32 N×C×H×W .npy, input order) and their labels beside them (ADV.labels.npy).") var saveAdversarials: String?
    @Option(name: .long, help: "State file: saved after every batch; re-running with the same file continues a killed run.") var state: String?
    @Flag(name: .long, help: "Skip the gradient-masking checks (large-ε run, zero gradients, randomness).") var noChecks = false

    /// Every output path must be writable before the first attack runs.
    func validate() throws { try checkWritable() }

    func checkWritable() throws {
        let outputs: [(String, String?)] = [("--json", json), ("--per-example", perExample), ("--save-adversarials", saveAdversarials),
                                            ("--save-adversarials (labels)", saveAdversarials.map(adversarialLabelsPath)), ("--state", state)]
        for (flag, p) in outputs { try Check.writable(p, flag) }
    }
}

/// FNV-1a over bytes, as hex: a fingerprint of model files and data for --state.
func fnv1a(_ p: UnsafeRawBufferPointer) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in p { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return String(h, radix: 16)
}

struct EnsembleReport: Codable {
    struct PerAttack: Codable { var name: String; var robust_accuracy: Double; var broken: Int; var seconds: Double }
    struct RobustBench: Codable {
        var clean_acc: Double; var autoattack_acc: Double; var eps: Double; var threat_model: String
        var dataset: String; var architecture: String; var number_forward_passes: Int?
    }
    var command: String
    var model: String
    var data: String
    var n: Int
    var clean_accuracy: Double
    var robust_accuracy: Double
    var per_attack: [PerAttack]
    var eps: Double
    var norm: String
    var version: String
    var attacks: [String]
    var n_iter: Int
    var n_queries: Int
    var n_target_classes: Int
    var restarts: Int
    var eot: Int
    var seed: UInt64
    var gradient: String
    var flags: [MaskingFlag]
    var robustbench: RobustBench
    var seconds: Double
    var defense: String?
    var eval_runs: Int?
    var judge_runs: Int?
}

extension EnsembleOutputOptions {
    /// The saved state to continue from, if --state names an existing file.
    func loadState() throws -> AutoAttackState? {
        guard let p = state, FileManager.default.fileExists(atPath: p) else { return nil }
        guard let data = FileManager.default.contents(atPath: p) else { throw ValidationError("--state \(p) cannot be read") }
        do { return try JSONDecoder().decode(AutoAttackState.self, from: data) } catch {
            throw ValidationError("--state \(p) is not a robust-eval attack state file (\(error.localizedDescription))")
        }
    }

    /// Runs the ensemble with a progress line per attack, saving the state after every batch.
    func run(_ runner: AutoAttackRunner) throws -> AutoAttackResult {
        if let r = runner.state.cleanPredictions.isEmpty ? nil : runner.state {
            let done = r.finished.map(\.name).joined(separator: ", ")
            print("resuming from \(state!): \(done.isEmpty ? "no attack finished" : "finished " + done)\(r.position > 0 ? ", \(r.position) point(s) into the next" : "")")
        } else if state == nil {
            print("state:   not saved (--state F.json keeps it after every batch, so that a killed run continues)")
        }
        fflush(stdout)
        return try runShowingProgress(runner) { s in
            if let p = state { try writeJSON(s, to: p) }
        }
    }

    /// The per-example CSV and the final points with their labels.
    func writeFiles(_ result: AutoAttackResult, adversarials: Tensor?) throws {
        if let p = perExample {
            var s = "index,label,clean_prediction,broken_by,adversarial_prediction\n"
            for i in 0..<result.n {
                let by = result.cleanPredictions[i] != result.labels[i] ? "clean" : (result.brokenBy[i] ?? "none")
                s += "\(i),\(result.labels[i]),\(result.cleanPredictions[i]),\(by),\(result.adversarialPredictions[i])\n"
            }
            try AtomicFile.write(s, to: p)
        }
        if let p = saveAdversarials, let adversarials {
            try writeAdversarials(adversarials, labels: result.labels, to: p)
            print("adversarials → \(p) (labels → \(adversarialLabelsPath(p)))")
        }
    }
}

/// What autoattack, apgd, square and defend computed per example (a shard's part, or the whole
/// run), with the masking checks as counts.
struct EnsembleOutcome: Mergeable {
    var labels: [Int]
    var cleanPredictions: [Int]
    var brokenBy: [String?]
    var adversarialPredictions: [Int]
    var perAttack: [AutoAttackState.Finished]
    /// Correct predictions of each evaluation run, clean and on the final points.
    var cleanRunCorrect: [Int]
    var robustRunCorrect: [Int]
    var checks: [String: CheckTally]
    var seconds: Double

    init(_ r: AutoAttackResult, checks: [String: CheckTally], seconds: Double) {
        labels = r.labels; cleanPredictions = r.cleanPredictions; brokenBy = r.brokenBy; adversarialPredictions = r.adversarialPredictions
        perAttack = r.perAttack
        cleanRunCorrect = r.cleanRunAccuracies.map { Int(($0 * Double(r.n)).rounded()) }
        robustRunCorrect = r.robustRunAccuracies.map { Int(($0 * Double(r.n)).rounded()) }
        self.checks = checks; self.seconds = seconds
    }

    static func merge(_ p: [EnsembleOutcome]) throws -> EnsembleOutcome {
        var m = p[0]
        m.labels = joined(p.map(\.labels)); m.cleanPredictions = joined(p.map(\.cleanPredictions))
        m.brokenBy = joined(p.map(\.brokenBy)); m.adversarialPredictions = joined(p.map(\.adversarialPredictions))
        for o in p.dropFirst() {
            guard o.perAttack.map(\.name) == m.perAttack.map(\.name), o.cleanRunCorrect.count == m.cleanRunCorrect.count,
                  o.robustRunCorrect.count == m.robustRunCorrect.count else {
                throw ValidationError("merge: the parts ran different attacks or evaluation runs")
            }
            for k in m.perAttack.indices { m.perAttack[k].robust += o.perAttack[k].robust; m.perAttack[k].seconds += o.perAttack[k].seconds }
            for k in m.cleanRunCorrect.indices { m.cleanRunCorrect[k] += o.cleanRunCorrect[k] }
            for k in m.robustRunCorrect.indices { m.robustRunCorrect[k] += o.robustRunCorrect[k] }
            for (key, t) in o.checks { m.checks[key] = (m.checks[key] ?? CheckTally()) + t }
            m.seconds += o.seconds
        }
        return m
    }

    var n: Int { labels.count }

    func result(adversarials: Tensor?) -> AutoAttackResult {
        AutoAttackResult(labels: labels, cleanPredictions: cleanPredictions, brokenBy: brokenBy, adversarialPredictions: adversarialPredictions,
                         perAttack: perAttack, adversarials: adversarials ?? Tensor(shape: [0]),
                         cleanRunAccuracies: cleanRunCorrect.map { Double($0) / Double(max(n, 1)) },
                         robustRunAccuracies: robustRunCorrect.map { Double($0) / Double(max(n, 1)) })
    }
}

/// The masking checks of a shard: tallies over its images (global indices `indices`).
func runMaskingChecks(_ classifier: Classifier, images x: Tensor, labels y: [Int], indices: [Int], clean: [Int],
                      batchSize: Int, seed: UInt64, evalRuns: Int) throws -> [String: CheckTally] {
    let correct = (0..<y.count).filter { clean[$0] == y[$0] }
    let eps = (0..<y.count).filter { indices[$0] < MaskingChecks.largeEpsilonImages }
    let rnd = (0..<y.count).filter { indices[$0] < MaskingChecks.randomnessImages }
    return [
        "large_eps": try MaskingChecks.largeEpsilon(classifier, images: x.gather(rows: eps), labels: eps.map { y[$0] },
                                                    indices: eps.map { indices[$0] }, seed: seed, evalRuns: 1),
        "zero_gradients": try MaskingChecks.zeroGradients(classifier, images: x.gather(rows: correct), labels: correct.map { y[$0] },
                                                          indices: correct.map { indices[$0] }, batchSize: batchSize, seed: seed),
        "randomness": try MaskingChecks.randomness(classifier, images: x.gather(rows: rnd), indices: rnd.map { indices[$0] }, seed: seed),
    ]
}

/// What the ensemble report states besides the per-example results.
struct EnsembleContext: Codable {
    var command: String
    var model: String
    var architecture: String
    var data: String
    var config: AutoAttackConfig
    var targetClasses: Int
    var gradient: String
    var stochastic: Bool
    var defense: String?
    var evalRuns: Int
    var judgeRuns: Int?   // nil: every evaluation run judges every point
    var checks: Bool
}

/// Prints the clean row and the robust accuracy after each attack; returns the rows for JSON.
func printAttackTable(_ result: AutoAttackResult) -> [EnsembleReport.PerAttack] {
    let n = Double(result.n)
    func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
        let p = String(repeating: " ", count: max(w - s.count, 0))
        return left ? s + p : p + s
    }
    let rows = result.perAttack.enumerated().map { k, f in
        // The final runs' breaks count for the attack that found the point; their row shows how many
        // there were (the phase follows at least one attack).
        let broken = f.name == AutoAttackRunner.finalRunsPhase ? result.perAttack[k - 1].robust - f.robust
                                                               : result.brokenBy.filter { $0 == f.name }.count
        return EnsembleReport.PerAttack(name: f.name, robust_accuracy: Double(f.robust) / n, broken: broken, seconds: f.seconds)
    }
    print(pad("", 20, left: true) + pad("robust accuracy", 16) + pad("broken", 8) + pad("seconds", 10))
    print(pad("clean", 20, left: true) + pad(String(format: "%.2f %%", 100 * result.cleanAccuracy), 16))
    for r in rows {
        print(pad("after \(r.name)", 20, left: true) + pad(String(format: "%.2f %%", 100 * r.robust_accuracy), 16)
              + pad(String(r.broken), 8) + pad(String(format: "%.1f", r.seconds), 10))
    }
    if let f = rows.last, f.name == AutoAttackRunner.finalRunsPhase {
        print("(\(f.name): the remaining evaluation runs on each example's most adversarial point; a point broken there also counts for the attack that found it)")
    }
    return rows
}

/// Runs the configured ensemble on `classifier` (the loaded model, or a defense around it) and reports it.
func runEnsemble(command: String, config: AutoAttackConfig, model: ModelOptions, input: InputOptions,
                 output: EnsembleOutputOptions, shard: ShardOptions, runtime: RuntimeOptions,
                 wrap: ((LoadedModel) throws -> (Classifier, String))? = nil, evalRuns: Int = 1, judgeRuns: Int? = nil) throws {
    runtime.apply()
    try output.checkWritable()
    let judgeRuns = judgeRuns.flatMap { $0 < evalRuns ? $0 : nil }   // J = M is the default: the same run, the same state file
    let l = try model.load()
    let d = try input.load(for: l)
    guard d.count > 0 else { throw ValidationError("no images selected (check --limit / --offset)") }
    let plan = try shard.plan(n: d.count, json: output.json)
    try Check.writable(output.saveAdversarials, "--save-adversarials", bytes: plan.range.count * d.images.count / d.count * 4)
    try config.validate(classes: l.model.numClasses)
    let (classifier, defenseNote) = try wrap?(l) ?? (l.classifier, "")
    var settings = ["seed": String(config.seed)]
    settings["settings"] = settingsJSON(config)
    if !defenseNote.isEmpty { settings["defense"] = defenseNote; settings["eval_runs"] = String(evalRuns) }
    if let judgeRuns { settings["judge_runs"] = String(judgeRuns) }
    settings["checks"] = output.noChecks ? "off" : "on"
    if config.attacks.contains(.square) { settings["square"] = Square.revision }
    let fp = runFingerprint(command: command, modelPath: l.path, data: d, settings: settings)
    var stateFP = fp
    if let s = plan.spec { stateFP["shard"] = "\(s.index)/\(s.count)" }
    let x = d.images.rows(plan.range.lowerBound, plan.range.count), y = Array(d.labels[plan.range])
    let runner = try AutoAttackRunner(model: classifier, config: config, images: x, labels: y, batchSize: input.batchSize,
                                      evalRuns: evalRuns, judgeRuns: judgeRuns, indices: plan.indices, fingerprint: stateFP, resume: try output.loadState())

    for n in d.notes { print(n) }
    print("model:   \(l.path) (\(l.model.architectureName)); gradient \(classifier.gradientDescription)")
    if !defenseNote.isEmpty { print("defense: \(defenseNote)\(classifier.isStochastic ? "; robust only if correct in all \(evalRuns) evaluation runs" : "")") }
    if let judgeRuns, classifier.isStochastic { print("judged:  " + Defend.judging(evalRuns: evalRuns, judgeRuns: judgeRuns)) }
    print("data:    \(d.name), \(d.count) images")
    if let note = plan.note { print("part:    \(note)") }
    var shown = config
    shown.targetClasses = config.targets(classes: l.model.numClasses)
    print("attacks: \(shown.summary); seed \(config.seed)")

    let result = try output.run(runner)
    let t0 = Date()   // the checks' time; the run's own is kept in its state across resumes
    let checks = output.noChecks ? [:] : try runMaskingChecks(classifier, images: x, labels: y, indices: plan.indices, clean: result.cleanPredictions,
                                                              batchSize: input.batchSize, seed: config.seed, evalRuns: evalRuns)
    let outcome = EnsembleOutcome(result, checks: checks, seconds: result.seconds + Date().timeIntervalSince(t0))
    let context = EnsembleContext(command: command, model: l.path, architecture: l.model.architectureName, data: d.name, config: config,
                                  targetClasses: config.targets(classes: l.model.numClasses), gradient: classifier.gradientDescription,
                                  stochastic: classifier.isStochastic, defense: defenseNote.isEmpty ? nil : defenseNote, evalRuns: evalRuns,
                                  judgeRuns: judgeRuns, checks: !output.noChecks)
    guard let (c, o, a) = try plan.complete(command: command, fingerprint: fp, context: context, outcome: outcome,
                                            adversarials: output.saveAdversarials != nil ? result.adversarials : nil, labels: y,
                                            json: output.json, saveAdversarials: output.saveAdversarials) else { return }
    try reportEnsemble(c, o, adversarials: a, output: output)
}

/// The ensemble's results: table, flags, and --json / --per-example / --save-adversarials.
func reportEnsemble(_ c: EnsembleContext, _ o: EnsembleOutcome, adversarials: Tensor?, output: EnsembleOutputOptions) throws {
    let result = o.result(adversarials: adversarials)
    let config = c.config
    var flags: [MaskingFlag] = []
    if c.checks {
        let whiteBox = config.attacks.contains { $0 != .square }
        if let f = MaskingChecks.blackBoxBreaks(brokenBy: o.brokenBy, attacks: o.perAttack.map(\.name), whiteBoxRan: whiteBox) { flags.append(f) }
        flags.append(MaskingChecks.largeEpsilonFlag(o.checks["large_eps"] ?? CheckTally()))
        flags.append(MaskingChecks.zeroGradientsFlag(o.checks["zero_gradients"] ?? CheckTally()))
        flags.append(MaskingChecks.randomnessFlag(o.checks["randomness"] ?? CheckTally(), stochastic: c.stochastic))
    }
    let rows = printAttackTable(result)
    print(String(format: "robust accuracy: %.2f%% (per-example worst case over %@)", 100 * result.robustAccuracy,
                 config.attacks.map(\.rawValue).joined(separator: ", ") as NSString))
    for f in flags where f.triggered { print("FLAG \(f.name): \(f.detail)") }
    if !flags.isEmpty && !flags.contains(where: \.triggered) { print("masking checks: none triggered (\(flags.map(\.name).joined(separator: ", ")))") }
    print(String(format: "time: %.1f s", o.seconds))
    try output.writeFiles(result, adversarials: adversarials)
    if let j = output.json {
        let threat = config.norm == .linf ? "Linf" : "L2"
        let rb = EnsembleReport.RobustBench(clean_acc: result.cleanAccuracy, autoattack_acc: result.robustAccuracy, eps: Double(config.epsilon),
                                            threat_model: threat, dataset: c.data, architecture: c.architecture,
                                            number_forward_passes: c.stochastic ? nil : 1)
        try writeJSON(EnsembleReport(command: c.command, model: c.model, data: c.data, n: result.n, clean_accuracy: result.cleanAccuracy,
                                     robust_accuracy: result.robustAccuracy, per_attack: rows, eps: Double(config.epsilon),
                                     norm: config.norm.rawValue, version: config.version.rawValue, attacks: config.attacks.map(\.rawValue),
                                     n_iter: config.iterations, n_queries: config.queries, n_target_classes: c.targetClasses,
                                     restarts: config.restarts, eot: config.eot, seed: config.seed, gradient: c.gradient,
                                     flags: flags, robustbench: rb, seconds: o.seconds, defense: c.defense,
                                     eval_runs: c.defense == nil ? nil : c.evalRuns,
                                     judge_runs: c.defense == nil ? nil : c.judgeRuns ?? c.evalRuns), to: j)
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder { let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]; return e }
}

/// Runs an ensemble with a progress line per component (labelled `prefix` + its name).
func runShowingProgress(_ runner: AutoAttackRunner, prefix: String = "",
                        checkpoint: (AutoAttackState) throws -> Void = { _ in }) throws -> AutoAttackResult {
    var prog: Progress? = nil, current = ""
    let result = try runner.run(progress: { name, done, total, broken in
        if name != current { prog?.finish(); prog = Progress(total: total, label: prefix + name); current = name }
        prog?.update(done, extra: name == AutoAttackRunner.cleanPhase ? "misclassified \(broken)" : "broken \(broken)")
    }, checkpoint: checkpoint)
    prog?.finish()
    return result
}
