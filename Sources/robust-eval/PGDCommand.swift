// PGDCommand.swift: `robust-eval pgd`: clean and robust accuracy under PGD (L∞ or L2) or FGSM.
import ArgumentParser
import Attacks
import Foundation
import JEMCore

/// What pgd and transfer computed per example (a shard's part, or the whole run).
struct AttackOutcome: Mergeable {
    var labels: [Int]
    var clean: [Int]
    var adversarial: [Int]
    var norms: [Float]
    var seconds: Double
    /// transfer: robust on the source model.
    var sourceRobust: [Bool]?

    static func merge(_ p: [AttackOutcome]) throws -> AttackOutcome {
        AttackOutcome(labels: joined(p.map(\.labels)), clean: joined(p.map(\.clean)), adversarial: joined(p.map(\.adversarial)),
                      norms: joined(p.map(\.norms)), seconds: p.map(\.seconds).reduce(0, +),
                      sourceRobust: p[0].sourceRobust == nil ? nil : joined(p.map { $0.sourceRobust ?? [] }))
    }

    var result: RobustnessResult {
        RobustnessResult(labels: labels, cleanPredictions: clean, adversarialPredictions: adversarial, perturbationNorms: norms, seconds: seconds)
    }
}

/// What the pgd/transfer report states besides the per-example results.
struct AttackContext: Codable {
    var command: String
    var model: String
    var data: String
    var attack: PGDConfig
    var gradient: String
    var seed: UInt64
    var transferSource: String?
}

/// Model, data, seed and settings: what the parts of one run share (checked by merge and --state).
func runFingerprint(command: String, modelPath: String, data d: Dataset, settings: [String: String]) -> [String: String] {
    var fp: [String: String] = ["command": command, "model": modelPath, "data": d.name, "n": String(d.count)]
    if let bytes = FileManager.default.contents(atPath: modelPath) { fp["model_hash"] = bytes.withUnsafeBytes(fnv1a) }
    fp["images_hash"] = fnv1a(UnsafeRawBufferPointer(start: d.images.data, count: d.images.count * 4))
    fp["labels_hash"] = d.labels.withUnsafeBytes(fnv1a)
    fp.merge(settings) { a, _ in a }
    return fp
}

func settingsJSON<T: Encodable>(_ v: T) -> String {
    (try? JSONEncoder.sorted.encode(v)).flatMap { String(data: $0, encoding: .utf8) } ?? ""
}

struct PGDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgd",
        abstract: "Robust accuracy under a PGD attack (L∞ or L2; --steps 1 --no-random-start --step-size eps is FGSM).",
        discussion: "Defaults follow common practice: L∞ ε=8/255, step 2/255, 10 steps, random start, cross-entropy; L2 ε=0.5, step 2.5·ε/steps. Runs on the bundled JEM and the Fashion-MNIST test split unless told otherwise.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var attack: AttackOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        runtime.apply()
        let cfg = try attack.config()
        let l = try model.load()
        let d = try input.load(for: l)
        let plan = try shard.plan(n: d.count, json: output.json)
        let pgd = try PGD(config: cfg)
        try Check.writable(output.saveAdversarials, "--save-adversarials", bytes: plan.range.count * d.images.count / d.count * 4)
        let advs = output.saveAdversarials != nil ? Tensor(shape: [plan.range.count] + Array(d.images.shape.dropFirst())) : nil
        for n in d.notes { print(n) }
        print("model:   \(l.path) (\(l.model.architectureName))")
        print("data:    \(d.name), \(d.count) images")
        if let note = plan.note { print("part:    \(note)") }
        print("attack:  \(cfg.summary); gradient \(l.classifier.gradientDescription)")
        fflush(stdout)
        let x = d.images.rows(plan.range.lowerBound, plan.range.count), y = Array(d.labels[plan.range])
        let prog = Progress(total: y.count, label: "pgd")
        let r = try Evaluation.run(l.classifier, attack: pgd, images: x, labels: y, batchSize: input.batchSize,
                                   seed: runtime.seed, indices: plan.indices, targeted: cfg.targeted, adversarials: advs) { prog.update($0) }
        prog.finish()
        let outcome = AttackOutcome(labels: y, clean: r.cleanPredictions, adversarial: r.adversarialPredictions,
                                    norms: r.perturbationNorms, seconds: r.seconds)
        let context = AttackContext(command: "pgd", model: l.path, data: d.name, attack: cfg, gradient: l.classifier.gradientDescription,
                                    seed: runtime.seed)
        let fp = runFingerprint(command: "pgd", modelPath: l.path, data: d, settings: ["seed": String(runtime.seed), "attack": settingsJSON(cfg)])
        guard let (c, o, a) = try plan.complete(command: "pgd", fingerprint: fp, context: context, outcome: outcome, adversarials: advs,
                                                labels: y, json: output.json, saveAdversarials: output.saveAdversarials) else { return }
        try PGDCommand.report(c, o, adversarials: a, output: output)
    }

    /// The results: printed, and written to --json, --per-example and --save-adversarials.
    static func report(_ c: AttackContext, _ o: AttackOutcome, adversarials: Tensor?, output: OutputOptions) throws {
        let r = o.result
        let cfg = c.attack
        let ips = Double(r.n * cfg.steps * cfg.restarts) / max(r.seconds, 1e-9)
        var rate: Double? = nil
        if let src = o.sourceRobust {
            let cleanOK = r.cleanCorrect.filter { $0 }.count
            let transferred = (0..<r.n).filter { r.cleanCorrect[$0] && o.adversarial[$0] != o.labels[$0] }.count
            rate = Double(transferred) / Double(max(cleanOK, 1))
            print(String(format: "source robust accuracy: %.2f%%", 100 * Double(src.filter { $0 }.count) / Double(max(r.n, 1))))
            print(String(format: "target clean accuracy:  %.2f%%\ntarget robust accuracy: %.2f%%\ntransfer rate: %.2f%% of the target's correctly classified images", 100 * r.cleanAccuracy, 100 * r.robustAccuracy, 100 * rate!))
        } else {
            print(String(format: "clean accuracy:  %.2f%%", 100 * r.cleanAccuracy))
            print(String(format: "robust accuracy: %.2f%%", 100 * r.robustAccuracy))
            print(String(format: "time: %.1f s (%.0f images/s per PGD step)", r.seconds, ips))
        }
        if let p = output.saveAdversarials, let adversarials {
            try writeAdversarials(adversarials, labels: o.labels, to: p)
            print("adversarials → \(p), labels → \(adversarialLabelsPath(p))")
        }
        try output.writePerExample(r)
        if let j = output.json {
            try writeJSON(AttackReport(command: c.command, model: c.model, data: c.data, n: r.n, clean_accuracy: r.cleanAccuracy,
                                       robust_accuracy: r.robustAccuracy, attack: cfg, attack_summary: cfg.summary,
                                       gradient: c.gradient, eval_runs: nil, seed: c.seed, seconds: r.seconds,
                                       images_per_second_per_step: ips, transfer_source: c.transferSource, transfer_rate: rate), to: j)
        }
    }
}

struct Transfer: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Craft adversarials on a source (surrogate) model and evaluate them on a target model.")
    @Option(name: .long, help: "Source (surrogate) model: jem, baseline or a file.") var source: String = "baseline"
    @Option(name: .long, help: "Target model: jem, baseline or a file.") var target: String = "jem"
    @OptionGroup var input: InputOptions
    @OptionGroup var attack: AttackOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        runtime.apply()
        let cfg = try attack.config()
        let src = try BundledModels.load(source), tgt = try BundledModels.load(target)
        guard src.model.numClasses == tgt.model.numClasses else {
            throw ValidationError("source has \(src.model.numClasses) classes, target \(tgt.model.numClasses)")
        }
        let d = try input.load(for: tgt)
        let plan = try shard.plan(n: d.count, json: output.json)
        for n in d.notes { print(n) }
        print("source:  \(src.path)\ntarget:  \(tgt.path)\ndata:    \(d.name), \(d.count) images\nattack:  \(cfg.summary) on the source")
        if let note = plan.note { print("part:    \(note)") }
        fflush(stdout)
        let x = d.images.rows(plan.range.lowerBound, plan.range.count), y = Array(d.labels[plan.range])
        let advs = Tensor(shape: x.shape)
        let prog = Progress(total: y.count, label: "transfer")
        let crafted = try Evaluation.run(src.classifier, attack: try PGD(config: cfg), images: x, labels: y, batchSize: input.batchSize,
                                         seed: runtime.seed, indices: plan.indices, targeted: cfg.targeted, adversarials: advs) { prog.update($0) }
        prog.finish()
        let clean = try Evaluation.logits(tgt.classifier, x, batchSize: input.batchSize, seed: runtime.seed).argmaxRows()
        let adv = try Evaluation.logits(tgt.classifier, advs, batchSize: input.batchSize, seed: runtime.seed).argmaxRows()
        let outcome = AttackOutcome(labels: y, clean: clean, adversarial: adv, norms: crafted.perturbationNorms, seconds: crafted.seconds,
                                    sourceRobust: crafted.robustCorrect)
        let context = AttackContext(command: "transfer", model: tgt.path, data: d.name, attack: cfg, gradient: "transfer from \(src.path)",
                                    seed: runtime.seed, transferSource: src.path)
        var fp = runFingerprint(command: "transfer", modelPath: tgt.path, data: d, settings: ["seed": String(runtime.seed), "attack": settingsJSON(cfg)])
        fp["source"] = src.path
        if let bytes = FileManager.default.contents(atPath: src.path) { fp["source_hash"] = bytes.withUnsafeBytes(fnv1a) }
        guard let (c, o, a) = try plan.complete(command: "transfer", fingerprint: fp, context: context, outcome: outcome,
                                                adversarials: output.saveAdversarials != nil ? advs : nil, labels: y,
                                                json: output.json, saveAdversarials: output.saveAdversarials) else { return }
        try PGDCommand.report(c, o, adversarials: a, output: output)
    }
}
