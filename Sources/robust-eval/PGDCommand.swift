// PGDCommand.swift: `robust-eval pgd`: clean and robust accuracy under PGD (L∞ or L2) or FGSM.
import ArgumentParser
import Attacks
import Foundation
import JEMCore

struct PGDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgd",
        abstract: "Robust accuracy under a PGD attack (L∞ or L2; --steps 1 --no-random-start --step-size eps is FGSM).",
        discussion: "Defaults follow common practice: L∞ ε=8/255, step 2/255, 10 steps, random start, cross-entropy; L2 ε=0.5, step 2.5·ε/steps. Runs on the bundled JEM and the Fashion-MNIST test split unless told otherwise.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var attack: AttackOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        runtime.apply()
        let cfg = try attack.config()
        let l = try model.load()
        let d = try input.load(for: l)
        let pgd = try PGD(config: cfg)
        try Check.writable(output.saveAdversarials, "--save-adversarials", bytes: d.images.count * 4)
        let advs = output.saveAdversarials != nil ? Tensor(shape: d.images.shape) : nil
        for n in d.notes { print(n) }
        print("model:   \(l.path) (\(l.model.architectureName))")
        print("data:    \(d.name), \(d.count) images")
        print("attack:  \(cfg.summary); gradient \(l.classifier.gradientDescription)")
        fflush(stdout)
        let prog = Progress(total: d.count, label: "pgd")
        let r = try Evaluation.run(l.classifier, attack: pgd, images: d.images, labels: d.labels, batchSize: input.batchSize,
                                   seed: runtime.seed, targeted: cfg.targeted, adversarials: advs) { prog.update($0) }
        prog.finish()
        let ips = Double(d.count * cfg.steps * cfg.restarts) / max(r.seconds, 1e-9)
        print(String(format: "clean accuracy:  %.2f%%", 100 * r.cleanAccuracy))
        print(String(format: "robust accuracy: %.2f%%", 100 * r.robustAccuracy))
        print(String(format: "time: %.1f s (%.0f images/s per PGD step)", r.seconds, ips))
        if let p = output.saveAdversarials, let advs {
            try writeAdversarials(advs, labels: d.labels, to: p)
            print("adversarials → \(p), labels → \(adversarialLabelsPath(p))")
        }
        try output.writePerExample(r)
        if let j = output.json {
            try writeJSON(AttackReport(command: "pgd", model: l.path, data: d.name, n: d.count, clean_accuracy: r.cleanAccuracy,
                                       robust_accuracy: r.robustAccuracy, attack: cfg, attack_summary: cfg.summary,
                                       gradient: l.classifier.gradientDescription, eval_runs: nil, seed: runtime.seed, seconds: r.seconds,
                                       images_per_second_per_step: ips), to: j)
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
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        runtime.apply()
        let cfg = try attack.config()
        let src = try BundledModels.load(source), tgt = try BundledModels.load(target)
        guard src.model.numClasses == tgt.model.numClasses else {
            throw ValidationError("source has \(src.model.numClasses) classes, target \(tgt.model.numClasses)")
        }
        let d = try input.load(for: tgt)
        for n in d.notes { print(n) }
        print("source:  \(src.path)\ntarget:  \(tgt.path)\ndata:    \(d.name), \(d.count) images\nattack:  \(cfg.summary) on the source")
        fflush(stdout)
        let advs = Tensor(shape: d.images.shape)
        let prog = Progress(total: d.count, label: "transfer")
        let crafted = try Evaluation.run(src.classifier, attack: try PGD(config: cfg), images: d.images, labels: d.labels,
                                         batchSize: input.batchSize, seed: runtime.seed, targeted: cfg.targeted, adversarials: advs) { prog.update($0) }
        prog.finish()
        let clean = try Evaluation.logits(tgt.classifier, d.images, batchSize: input.batchSize, seed: runtime.seed).argmaxRows()
        let adv = try Evaluation.logits(tgt.classifier, advs, batchSize: input.batchSize, seed: runtime.seed).argmaxRows()
        let r = RobustnessResult(labels: d.labels, cleanPredictions: clean, adversarialPredictions: adv,
                                 perturbationNorms: crafted.perturbationNorms, seconds: crafted.seconds)
        let cleanOK = r.cleanCorrect.filter { $0 }.count
        let transferred = (0..<r.n).filter { r.cleanCorrect[$0] && adv[$0] != d.labels[$0] }.count
        let rate = Double(transferred) / Double(max(cleanOK, 1))
        print(String(format: "source robust accuracy: %.2f%%", 100 * crafted.robustAccuracy))
        print(String(format: "target clean accuracy:  %.2f%%\ntarget robust accuracy: %.2f%%\ntransfer rate: %.2f%% of the target's correctly classified images", 100 * r.cleanAccuracy, 100 * r.robustAccuracy, 100 * rate))
        if let p = output.saveAdversarials { try writeAdversarials(advs, labels: d.labels, to: p) }
        try output.writePerExample(r)
        if let j = output.json {
            try writeJSON(AttackReport(command: "transfer", model: tgt.path, data: d.name, n: d.count, clean_accuracy: r.cleanAccuracy,
                                       robust_accuracy: r.robustAccuracy, attack: cfg, attack_summary: cfg.summary,
                                       gradient: "transfer from \(src.path)", eval_runs: nil, seed: runtime.seed, seconds: r.seconds,
                                       images_per_second_per_step: Double(d.count * cfg.steps * cfg.restarts) / max(r.seconds, 1e-9),
                                       transfer_source: src.path, transfer_rate: rate), to: j)
        }
    }
}
