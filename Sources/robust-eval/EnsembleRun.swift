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
}

/// What a state file must match: the command, model, data and settings.
func runFingerprint(command: String, modelPath: String, data d: Dataset, settings: [String: String]) -> [String: String] {
    var fp: [String: String] = ["command": command, "model": modelPath, "data": d.name, "n": String(d.count)]
    if let bytes = FileManager.default.contents(atPath: modelPath) { fp["model_hash"] = bytes.withUnsafeBytes(fnv1a) }
    fp["images_hash"] = fnv1a(UnsafeRawBufferPointer(start: d.images.data, count: d.images.count * 4))
    fp["labels_hash"] = d.labels.withUnsafeBytes(fnv1a)
    fp.merge(settings) { a, _ in a }
    return fp
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
        }
        fflush(stdout)
        var prog: Progress? = nil, current = ""
        let result = try runner.run(progress: { name, done, total, broken in
            if name != current { prog?.finish(); prog = Progress(total: total, label: name); current = name }
            prog?.update(done, extra: "broken \(broken)")
        }, checkpoint: { s in
            if let p = state { try writeJSON(s, to: p) }
        })
        prog?.finish()
        return result
    }

    /// The per-example CSV and the final points with their labels.
    func writeFiles(_ result: AutoAttackResult) throws {
        if let p = perExample {
            var s = "index,label,clean_prediction,broken_by,adversarial_prediction\n"
            for i in 0..<result.n {
                let by = result.cleanPredictions[i] != result.labels[i] ? "clean" : (result.brokenBy[i] ?? "none")
                s += "\(i),\(result.labels[i]),\(result.cleanPredictions[i]),\(by),\(result.adversarialPredictions[i])\n"
            }
            try AtomicFile.write(s, to: p)
        }
        if let p = saveAdversarials {
            try writeAdversarials(result.adversarials, labels: result.labels, to: p)
            print("adversarials → \(p) (labels → \(adversarialLabelsPath(p)))")
        }
    }
}

/// Prints the clean row and the robust accuracy after each attack; returns the rows for JSON.
func printAttackTable(_ result: AutoAttackResult) -> [EnsembleReport.PerAttack] {
    let n = Double(result.n)
    func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
        let p = String(repeating: " ", count: max(w - s.count, 0))
        return left ? s + p : p + s
    }
    let rows = result.perAttack.map { f in
        EnsembleReport.PerAttack(name: f.name, robust_accuracy: Double(f.robust) / n,
                                 broken: result.brokenBy.filter { $0 == f.name }.count, seconds: f.seconds)
    }
    print(pad("", 20, left: true) + pad("robust accuracy", 16) + pad("broken", 8) + pad("seconds", 10))
    print(pad("clean", 20, left: true) + pad(String(format: "%.2f %%", 100 * result.cleanAccuracy), 16))
    for r in rows {
        print(pad("after \(r.name)", 20, left: true) + pad(String(format: "%.2f %%", 100 * r.robust_accuracy), 16)
              + pad(String(r.broken), 8) + pad(String(format: "%.1f", r.seconds), 10))
    }
    return rows
}

/// Runs the configured ensemble on `classifier` (the loaded model, or a defense around it) and reports it.
func runEnsemble(command: String, config: AutoAttackConfig, model: ModelOptions, input: InputOptions,
                 output: EnsembleOutputOptions, runtime: RuntimeOptions,
                 wrap: ((LoadedModel) throws -> (Classifier, String))? = nil, evalRuns: Int = 1) throws {
    runtime.apply()
    try output.checkWritable()
    let l = try model.load()
    let d = try input.load(for: l)
    guard d.count > 0 else { throw ValidationError("no images selected (check --limit / --offset)") }
    try Check.writable(output.saveAdversarials, "--save-adversarials", bytes: d.images.count * 4)
    try config.validate(classes: l.model.numClasses)
    let (classifier, defenseNote) = try wrap?(l) ?? (l.classifier, "")
    var settings = ["seed": String(config.seed)]
    if let s = String(data: try JSONEncoder.sorted.encode(config), encoding: .utf8) { settings["settings"] = s }
    if !defenseNote.isEmpty { settings["defense"] = defenseNote; settings["eval_runs"] = String(evalRuns) }
    let fp = runFingerprint(command: command, modelPath: l.path, data: d, settings: settings)
    let runner = try AutoAttackRunner(model: classifier, config: config, images: d.images, labels: d.labels,
                                      batchSize: input.batchSize, evalRuns: evalRuns, fingerprint: fp, resume: try output.loadState())

    for n in d.notes { print(n) }
    print("model:   \(l.path) (\(l.model.architectureName)); gradient \(classifier.gradientDescription)")
    if !defenseNote.isEmpty { print("defense: \(defenseNote)\(classifier.isStochastic ? "; robust only if correct in all \(evalRuns) evaluation runs" : "")") }
    print("data:    \(d.name), \(d.count) images")
    var shown = config
    shown.targetClasses = config.targets(classes: l.model.numClasses)
    print("attacks: \(shown.summary); seed \(config.seed)")

    let t0 = Date()
    let result = try output.run(runner)
    var flags: [MaskingFlag] = []
    if !output.noChecks {
        let correct = (0..<d.count).filter { result.cleanPredictions[$0] == d.labels[$0] }
        let whiteBox = config.attacks.contains { $0 != .square }
        if let f = MaskingChecks.blackBoxBreaks(result, whiteBoxRan: whiteBox) { flags.append(f) }
        flags.append(try MaskingChecks.largeEpsilon(classifier, images: d.images, labels: d.labels, rows: Array(correct.prefix(32)),
                                                    seed: config.seed, evalRuns: 1))
        flags.append(try MaskingChecks.zeroGradients(classifier, images: d.images, labels: d.labels, rows: correct,
                                                     batchSize: input.batchSize, seed: config.seed))
        flags.append(try MaskingChecks.randomness(classifier, images: d.images.rows(0, min(d.count, 16)), seed: config.seed))
    }
    let secs = Date().timeIntervalSince(t0)
    let rows = printAttackTable(result)
    print(String(format: "robust accuracy: %.2f%% (per-example worst case over %@)", 100 * result.robustAccuracy,
                 config.attacks.map(\.rawValue).joined(separator: ", ") as NSString))
    for f in flags where f.triggered { print("FLAG \(f.name): \(f.detail)") }
    if !flags.isEmpty && !flags.contains(where: \.triggered) { print("masking checks: none triggered (\(flags.map(\.name).joined(separator: ", ")))") }
    print(String(format: "time: %.1f s", secs))
    try output.writeFiles(result)
    if let j = output.json {
        let threat = config.norm == .linf ? "Linf" : "L2"
        let rb = EnsembleReport.RobustBench(clean_acc: result.cleanAccuracy, autoattack_acc: result.robustAccuracy, eps: Double(config.epsilon),
                                            threat_model: threat, dataset: d.name, architecture: l.model.architectureName,
                                            number_forward_passes: classifier.isStochastic ? nil : 1)
        try writeJSON(EnsembleReport(command: command, model: l.path, data: d.name, n: d.count, clean_accuracy: result.cleanAccuracy,
                                     robust_accuracy: result.robustAccuracy, per_attack: rows, eps: Double(config.epsilon),
                                     norm: config.norm.rawValue, version: config.version.rawValue, attacks: config.attacks.map(\.rawValue),
                                     n_iter: config.iterations, n_queries: config.queries, n_target_classes: config.targets(classes: l.model.numClasses),
                                     restarts: config.restarts, eot: config.eot, seed: config.seed, gradient: classifier.gradientDescription,
                                     flags: flags, robustbench: rb, seconds: secs, defense: defenseNote.isEmpty ? nil : defenseNote,
                                     eval_runs: defenseNote.isEmpty ? nil : evalRuns), to: j)
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder { let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]; return e }
}
