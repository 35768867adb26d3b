// Defend.swift: `robust-eval defend`: the SGLD-refinement defense measured under an adaptive PGD
// through it (BPDA or the exact chain gradient, with EOT) and under a transfer attack crafted on
// the undefended model.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

extension DefenseGradient: ExpressibleByArgument {}

/// The defense's knobs other than its step count (which `defend` takes as one number and `curve`
/// as a list).
struct DefenseOptions: ParsableArguments {
    @Option(name: .long, help: "n, chains per input (reference 5).") var chains: Int = 5
    @Option(name: .long, help: "σ of each chain's N(0,σ²) start noise, normalised space (reference 0.03).") var initNoise: Float = 0.03
    @Option(name: .long, help: "α, SGLD step size (reference 1).") var sgldStepSize: Float = 1
    @Option(name: .long, help: "σ_n, SGLD noise (reference 0.01).") var sgldNoise: Float = 0.01
    @Option(name: .long, help: "Attack gradient through the defense: bpda (identity Jacobian) or full (exact, through the chain).") var gradient: DefenseGradient = .bpda
    @Option(name: .long, help: "R, EOT draws of the defense's randomness per attack step.") var eot: Int = 1
    @Option(name: .long, help: "M, defense runs whose logits are averaged for each final prediction.") var evalRuns: Int = 1

    func config(steps: Int) throws -> DefenseConfig {
        guard evalRuns >= 1 else { throw ValidationError("--eval-runs must be ≥ 1, got \(evalRuns)") }
        let c = DefenseConfig(steps: steps, chains: chains, initNoise: initNoise, stepSize: sgldStepSize,
                              noise: sgldNoise, gradient: gradient, eot: eot)
        try c.validate()
        return c
    }
}

struct Defend: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Robust accuracy of the SGLD-refinement defense under an adaptive PGD through it and a transfer attack.",
        discussion: "Defense defaults are the reference's (attack_model.py): 5 chains from x + N(0, 0.03²), α = 1, σ_n = 0.01 in the model's normalised space. Without --limit, the first 1000 test images are used.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var attack: AttackOptions
    @Option(name: .long, help: "K, SGLD refinement steps (the paper's JEM-0/1/10).") var sgldSteps: Int = 10
    @OptionGroup var defense: DefenseOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        runtime.apply()
        let cfg = try attack.config()
        let dcfg = try defense.config(steps: sgldSteps)
        let l = try model.load()
        var inp = input
        if inp.data.limit == nil && inp.images == nil { inp.data.limit = 1000 }
        let d = try inp.load(classes: l.model.numClasses, metadata: l.metadata)
        let defended = try SGLDDefense(model: l.model, config: dcfg)
        let advs = output.saveAdversarials != nil ? Tensor(shape: d.images.shape) : nil
        let prog = Progress(total: d.count, label: "defend")
        let r = try Evaluation.run(defended, attack: try PGD(config: cfg), images: d.images, labels: d.labels, batchSize: input.batchSize,
                                   seed: runtime.seed, evalRuns: defense.evalRuns, targeted: cfg.targeted, adversarials: advs) { prog.update($0) }
        prog.finish()
        // Transfer: craft on the undefended model, evaluate through the defense.
        let transferAdv = Tensor(shape: d.images.shape)
        _ = try Evaluation.run(l.model, attack: try PGD(config: cfg), images: d.images, labels: d.labels, batchSize: input.batchSize,
                               seed: runtime.seed, targeted: cfg.targeted, adversarials: transferAdv)
        var rng = SeededRandom(seed: runtime.seed ^ 0x7A45)
        // Averages `evalRuns` defended passes per prediction, as the adaptive attack's evaluation does.
        var transferPred: [Int] = []
        var s = 0
        while s < d.count {
            let m = min(input.batchSize, d.count - s)
            transferPred += try Evaluation.predict(defended, transferAdv.rows(s, m), runs: defense.evalRuns, rng: &rng)
            s += m
        }
        let transferRobust = Double((0..<d.count).filter { r.cleanCorrect[$0] && transferPred[$0] == d.labels[$0] }.count) / Double(max(d.count, 1))
        let ips = Double(d.count * cfg.steps * cfg.restarts) / max(r.seconds, 1e-9)
        print("model:    \(l.path) (\(l.model.config.archName))")
        print("data:     \(d.name), \(d.count) images")
        print("defense:  \(dcfg.summary)\(defense.evalRuns > 1 ? "; predictions average \(defense.evalRuns) defense runs" : "")")
        print("attack:   \(cfg.summary); gradient \(defended.gradientDescription)")
        print(String(format: "clean accuracy (defended):            %.2f%%", 100 * r.cleanAccuracy))
        print(String(format: "robust accuracy (adaptive PGD):       %.2f%%", 100 * r.robustAccuracy))
        print(String(format: "robust accuracy (transfer from bare): %.2f%%", 100 * transferRobust))
        print(String(format: "time: %.1f s for the adaptive attack (%.1f images/s per PGD step)", r.seconds, ips))
        if let p = output.saveAdversarials, let advs { try NpyArray.write(advs, to: p) }
        try output.writePerExample(r)
        if let j = output.json {
            var rep = AttackReport(command: "defend", model: l.path, data: d.name, n: d.count, clean_accuracy: r.cleanAccuracy,
                                   robust_accuracy: r.robustAccuracy, attack: cfg, attack_summary: cfg.summary,
                                   gradient: defended.gradientDescription, eval_runs: defense.evalRuns, seed: runtime.seed,
                                   seconds: r.seconds, images_per_second_per_step: ips, defense: dcfg.summary)
            rep.transfer_robust_accuracy = transferRobust
            rep.defense_config = dcfg
            try writeJSON(rep, to: j)
        }
    }
}
