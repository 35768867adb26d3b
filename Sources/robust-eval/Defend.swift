// Defend.swift: `robust-eval defend`: the SGLD-refinement defense measured under an adaptive PGD
// through it (BPDA or the exact chain gradient, with EOT) and under a transfer attack crafted on
// the undefended model.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

extension DefenseGradient: ExpressibleByArgument {}

/// The evaluation runs of a stochastic defense (defend, curve, calibrate, autoattack --sgld-steps):
/// robust only if correct in all M; J of them judge each attack's points.
struct JudgingOptions: ParsableArguments {
    @Option(name: .customLong("eval-runs"), parsing: .unconditional, help: "M, evaluation runs of the defense: robust only if correct in all M (default 5).")
    var evalRunsFlag: Int?
    @Option(name: .customLong("judge-runs"), parsing: .unconditional, help: "J, evaluation runs that judge each attack's points (defend and curve: default 1; autoattack --sgld-steps: default M). Each example keeps its most adversarial point (lowest margin), which then gets the rest of the M runs; J = M judges every point M times.")
    var judgeRunsFlag: Int?

    func validate() throws {
        try Check.range(evalRunsFlag, 1...1000, "--eval-runs")
        try Check.range(judgeRunsFlag, 1...evalRuns, "--judge-runs (at most --eval-runs)")
    }

    var evalRuns: Int { evalRunsFlag ?? 5 }
}

/// The defense's knobs other than its step count (which `defend` takes as one number and `curve`
/// as a list).
struct DefenseOptions: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: "n, chains per input (reference 5).") var chains: Int = 5
    @Option(name: .long, parsing: .unconditional, help: "σ of each chain's N(0,σ²) start noise, normalised space (reference 0.03).") var initNoise: Float = 0.03
    @Option(name: .long, parsing: .unconditional, help: "α, SGLD step size (reference 1).") var sgldStepSize: Float = 1
    @Option(name: .long, parsing: .unconditional, help: "σ_n, SGLD noise (reference 0.01).") var sgldNoise: Float = 0.01
    @Option(name: .customLong("gradient"), help: "Attack gradient through the defense: full (exact, through the chain; the default of defend, curve and autoattack) or bpda (identity Jacobian).")
    var gradientFlag: DefenseGradient?
    @Option(name: .long, parsing: .unconditional, help: "R, EOT draws of the defense's randomness per attack step.") var eot: Int = 1
    @OptionGroup var judging: JudgingOptions

    func validate() throws {
        try Check.range(chains, 1...1000, "--chains")
        try Check.finite(initNoise, 0...10, "--init-noise")
        try Check.positive(sgldStepSize, "--sgld-step-size")
        try Check.finite(sgldNoise, 0...10, "--sgld-noise")
        try Check.range(eot, 1...10_000, "--eot")
    }

    /// M and J: the evaluation runs of every final point, and those that judge each attack's points.
    var evalRuns: Int { judging.evalRuns }
    var judgeRuns: Int { judging.judgeRunsFlag ?? 1 }

    /// calibrate's gradient (unused there: it attacks nothing); defend and curve default to full.
    var gradient: DefenseGradient { gradientFlag ?? .bpda }

    func config(steps: Int, gradient: DefenseGradient? = nil, eot: Int? = nil) throws -> DefenseConfig {
        let c = DefenseConfig(steps: steps, chains: chains, initNoise: initNoise, stepSize: sgldStepSize,
                              noise: sgldNoise, gradient: gradient ?? self.gradient, eot: eot ?? self.eot)
        try c.validate()
        return c
    }
}

struct DefenseReport: Codable {
    struct PerAttack: Codable { var name: String; var gradient: String; var eot: Int; var robust_accuracy: Double; var broken: Int; var seconds: Double }
    var command: String
    var model: String
    var data: String
    var n: Int
    var clean_accuracy: Double
    var clean_accuracy_sd: Double
    var robust_accuracy: Double
    var robust_accuracy_definition: String
    var robust_accuracy_mean: Double
    var robust_accuracy_sd: Double
    var per_attack: [PerAttack]
    var flags: [MaskingFlag]
    var eps: Double
    var norm: String
    var steps: Int
    var eot: Int
    var restarts: Int
    var eval_runs: Int
    var judge_runs: Int
    var n_queries: Int
    var attack_sgld_steps: Int
    var attack_chains: Int?
    var config: DefenseConfig
    var seed: UInt64
    var seconds: Double
}

func meanSD(_ v: [Double]) -> (Double, Double) {
    let m = v.reduce(0, +) / Double(max(v.count, 1))
    let sd = v.count > 1 ? (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot() : 0
    return (m, sd)
}

struct Defend: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Robust accuracy of the SGLD-refinement defense under attacks that know about it, worst case over attacks and evaluation runs.",
        discussion: """
            Attacks (--attacks, in this order, each only on the points still robust): apgd-ce and apgd-dlr with the exact \
            gradient through the chain (--gradient full) and EOT; bpda (APGD-CE on the straight-through view, the paper's \
            attack); transfer (AutoAttack components on the bare model, --transfer-attacks, judged through the defense); \
            square (gradient-free). The gradient attacks and Square craft their points on a cheaper view of the defense \
            (--attack-chains, default 1 chain; --attack-sgld-steps for a shorter chain); every candidate point is judged by \
            the defense itself, --eval-runs times: an image is robust only if every run classifies it correctly. \
            Defense defaults are the reference's: 5 chains from x + N(0, 0.03²), α = 1, σ_n = 0.01 in the model's \
            normalised space. Without --limit, the first 1000 test images are used.
            """)
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var threat: ThreatOptions
    @Option(name: .long, parsing: .unconditional, help: "APGD steps of the gradient attacks (AutoAttack's rand version: 100).") var steps: Int = 10
    @Option(name: .long, parsing: .unconditional, help: "Restarts of the gradient attacks.") var restarts: Int = 1
    @Option(name: .long, parsing: .unconditional, help: "K, SGLD refinement steps (the paper's JEM-0/1/10).") var sgldSteps: Int = 10
    @OptionGroup var attackOptions: DefenseAttackOptions
    @OptionGroup var defense: DefenseOptions
    @OptionGroup var output: EnsembleOutputOptions
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        _ = try threat.epsilon()
        try Check.range(steps, 1...100_000, "--steps")
        try Check.range(restarts, 1...1000, "--restarts")
        try Check.range(sgldSteps, 0...100_000, "--sgld-steps")
        if let k = attackOptions.attackSgldSteps {
            guard k >= 0, k <= sgldSteps else { throw ValidationError("--attack-sgld-steps must be in 0...\(sgldSteps) (--sgld-steps), got \(k)") }
        }
    }

    func run() throws {
        runtime.apply()
        try output.checkWritable()
        let epsilon = try threat.epsilon(), norm = threat.norm
        let list = try attackOptions.attackList()
        let evalRuns = defense.evalRuns, judgeRuns = defense.judgeRuns
        let gradient = defense.gradientFlag ?? .full
        let l = try model.load()
        var inp = input
        if inp.data.limit == nil && inp.images == nil { inp.data.limit = 1000 }
        let d = try inp.load(for: l)
        guard d.count > 0 else { throw ValidationError("no images selected (check --limit / --offset)") }
        let plan = try shard.plan(n: d.count, json: output.json)
        let proto = try DefenseProtocol.build(model: l, defense: defense, options: attackOptions, sgldSteps: sgldSteps, gradient: gradient,
                                              norm: norm, epsilon: epsilon, steps: steps, restarts: restarts, seed: runtime.seed)
        let defended = proto.defended, dcfg = defended.config
        let kAttack = proto.view.steps, nAttack = proto.view.chains
        let components = proto.components, eots = proto.eots
        var gradients = proto.gradients
        if judgeRuns < evalRuns { gradients[AutoAttackRunner.finalRunsPhase] = "none (the remaining \(evalRuns - judgeRuns) evaluation runs on each final point)" }
        var settings = ["seed": String(runtime.seed), "defense": dcfg.summary, "eval_runs": String(evalRuns), "judge_runs": String(judgeRuns),
                        "attacks": list.map(\.rawValue).joined(separator: ","), "eps": String(epsilon), "norm": norm.rawValue,
                        "steps": String(steps), "restarts": String(restarts), "eot": String(defense.eot), "n_queries": String(attackOptions.nQueries),
                        "gradient": gradient.rawValue, "attack_sgld_steps": String(kAttack), "attack_chains": String(nAttack),
                        "transfer": attackOptions.transferAttacks]
        settings["version"] = "defend-3"
        if list.contains(.square) { settings["square"] = Square.revision }
        settings["checks"] = output.noChecks ? "off" : "on"
        let fp = runFingerprint(command: "defend", modelPath: l.path, data: d, settings: settings)
        var stateFP = fp
        if let s = plan.spec { stateFP["shard"] = "\(s.index)/\(s.count)" }
        var rc = AutoAttackConfig(); rc.seed = runtime.seed; rc.norm = norm; rc.epsilon = epsilon
        let x = d.images.rows(plan.range.lowerBound, plan.range.count), y = Array(d.labels[plan.range])
        let runner = try AutoAttackRunner(model: defended, config: rc, images: x, labels: y, batchSize: input.batchSize,
                                          evalRuns: evalRuns, judgeRuns: judgeRuns, components: components, indices: plan.indices, fingerprint: stateFP,
                                          resume: try output.loadState())

        for n in d.notes { print(n) }
        print("model:    \(l.path) (\(l.model.architectureName))")
        print("data:     \(d.name), \(d.count) images")
        if let note = plan.note { print("part:     \(note)") }
        print("defense:  \(dcfg.summary)")
        print("judged:   " + Defend.judging(evalRuns: evalRuns, judgeRuns: judgeRuns))
        if let v = proto.viewNote { print("view:     the gradient attacks and Square craft on \(v); every point is judged by the defense above") }
        let e = norm == .linf ? String(format: "%.4f (%.1f/255)", epsilon, epsilon * 255) : String(format: "%.4f", epsilon)
        print("attacks:  \(norm == .linf ? "L∞" : "L2") ε=\(e); APGD \(steps) steps, \(restarts) restart(s), EOT \(defense.eot); in order:")
        for a in list { print("          \(a.rawValue): gradient \(gradients[a.rawValue]!)") }

        let result = try output.run(runner)
        let t0 = Date()   // the checks' time; the run's own is kept in its state across resumes
        var checks: [String: CheckTally] = [:]
        let gradientRan = list.contains(.apgdCE) || list.contains(.apgdDLR)
        if !output.noChecks && gradientRan {
            // Does a twice-as-strong attack (2× steps, 2× EOT) break points the run left robust? Checked on the
            // robust points among the first 32 images (global indices, so shards agree with one run).
            let rows = (0..<y.count).filter { result.cleanPredictions[$0] == y[$0] && result.brokenBy[$0] == nil
                                              && plan.indices[$0] < Defend.strongerCheckImages }
            var tally = CheckTally(checked: rows.count, hits: 0)
            if !rows.isEmpty {
                var c = APGDConfig()
                c.norm = threat.norm; c.epsilon = epsilon; c.steps = 2 * steps; c.eot = 2 * defense.eot
                let inner = APGD(config: c)
                let check = try proto.onView("apgd-ce", inner)
                let ids = rows.map { plan.indices[$0] }
                var streams = ids.map { ExampleStreams.stream(seed: runtime.seed, example: $0, purpose: "check/2x") }
                var rng = RowStreams(seed: runtime.seed, examples: ids, purpose: "model/check/2x")
                let xa = try check.attack(defended, x.gather(rows: rows), labels: rows.map { y[$0] }, streams: &streams, modelRng: &rng)
                var newly = Set<Int>()
                for _ in 0..<evalRuns {
                    let p = try defended.logits(xa, rng: &rng).argmaxRows()
                    for (j, r) in rows.enumerated() where p[j] != y[r] { newly.insert(r) }
                }
                tally.hits = newly.count
            }
            checks["stronger_attack"] = tally
        }
        let outcome = EnsembleOutcome(result, checks: checks, seconds: result.seconds + Date().timeIntervalSince(t0))
        let context = DefendContext(model: l.path, data: d.name, attacks: list.map(\.rawValue), gradients: gradients, eots: eots,
                                    epsilon: epsilon, norm: norm, steps: steps, eot: defense.eot, restarts: restarts, evalRuns: evalRuns, judgeRuns: judgeRuns,
                                    nQueries: attackOptions.nQueries, attackSgldSteps: kAttack, attackChains: nAttack, config: dcfg, seed: runtime.seed)
        guard let (c, o, a) = try plan.complete(command: "defend", fingerprint: fp, context: context, outcome: outcome,
                                                adversarials: output.saveAdversarials != nil ? result.adversarials : nil, labels: y,
                                                json: output.json, saveAdversarials: output.saveAdversarials) else { return }
        try Defend.report(c, o, adversarials: a, output: output)
    }

    /// The stronger-attack check looks at the robust points among the first 32 images.
    static let strongerCheckImages = 32

    /// How candidate points are judged by the defense.
    static func judging(evalRuns m: Int, judgeRuns j: Int) -> String {
        j >= m ? "every candidate point by \(m) evaluation run(s) of the defense"
            : "each attack's points by \(j) evaluation run(s) of the defense; each example's most adversarial point (lowest margin) by all \(m) (the \(AutoAttackRunner.finalRunsPhase) row)"
    }

    /// The results: table, worst case over attacks and runs, flags, and the output files.
    static func report(_ c: DefendContext, _ o: EnsembleOutcome, adversarials: Tensor?, output: EnsembleOutputOptions) throws {
        let result = o.result(adversarials: adversarials)
        let list = c.attacks
        var flags: [MaskingFlag] = []
        let broken = { (name: String) in result.brokenBy.filter { $0 == name }.count }
        let gradientRan = list.contains("apgd-ce") || list.contains("apgd-dlr")
        if gradientRan {
            for name in ["bpda", "transfer"] where list.contains(name) {
                let k = broken(name)
                flags.append(MaskingFlag(name: "\(name)_beats_full_chain", triggered: k > 0,
                                         detail: "\(name) broke \(k) point(s) the full-chain APGD missed"))
            }
        }
        if list.contains("square") && list.count > 1 {
            let k = broken("square")
            flags.append(MaskingFlag(name: "square_beats_gradient_attacks", triggered: k > 0,
                                     detail: "Square broke \(k) point(s) the earlier attacks missed"))
        }
        let (cm, csd) = meanSD(result.cleanRunAccuracies)
        let spread = (result.cleanRunAccuracies.max() ?? 0) - (result.cleanRunAccuracies.min() ?? 0)
        flags.append(MaskingFlag(name: "clean_accuracy_varies", triggered: spread > 0.02,
                                 detail: String(format: "clean accuracy ranges over %.2f points across %d runs", 100 * spread, result.cleanRunAccuracies.count)))
        if let t = o.checks["stronger_attack"], t.checked > 0 {
            flags.append(MaskingFlag(name: "stronger_attack_helps", triggered: t.hits > 0,
                                     detail: "APGD-CE with 2× steps and 2× EOT broke \(t.hits) of \(t.checked) robust points among the first \(strongerCheckImages) images" + (t.hits == 0 ? "" : ": robust accuracy is not converged")))
        }
        let table = printAttackTable(result)
        let (rm, rsd) = meanSD(result.robustRunAccuracies)
        let definition = c.judged >= c.evalRuns
            ? "robust only if correctly classified clean and after every attack in all \(c.evalRuns) evaluation runs"
            : "robust only if correctly classified clean in all \(c.evalRuns) evaluation runs, by the \(c.judged) run(s) judging each attack's point, and in all \(c.evalRuns) runs on its most adversarial point"
        print(String(format: "clean accuracy (defended): %.2f %% ± %.2f over %d runs", 100 * cm, 100 * csd, result.cleanRunAccuracies.count))
        print(String(format: "robust accuracy: %.2f %% (%@)", 100 * result.robustAccuracy, definition as NSString))
        print(String(format: "robust accuracy per run on the final points: %.2f %% ± %.2f", 100 * rm, 100 * rsd))
        for f in flags where f.triggered { print("FLAG \(f.name): \(f.detail)") }
        print(String(format: "time: %.1f s", o.seconds))
        try output.writeFiles(result, adversarials: adversarials)
        if let j = output.json {
            let rows = table.map { f in
                DefenseReport.PerAttack(name: f.name, gradient: c.gradients[f.name] ?? "", eot: c.eots[f.name] ?? 1,
                                        robust_accuracy: f.robust_accuracy, broken: f.broken, seconds: f.seconds)
            }
            try writeJSON(DefenseReport(command: "defend", model: c.model, data: c.data, n: result.n, clean_accuracy: cm, clean_accuracy_sd: csd,
                                        robust_accuracy: result.robustAccuracy, robust_accuracy_definition: definition,
                                        robust_accuracy_mean: rm, robust_accuracy_sd: rsd, per_attack: rows, flags: flags,
                                        eps: Double(c.epsilon), norm: c.norm.rawValue, steps: c.steps, eot: c.eot, restarts: c.restarts,
                                        eval_runs: c.evalRuns, judge_runs: c.judged, n_queries: c.nQueries, attack_sgld_steps: c.attackSgldSteps, attack_chains: c.attackChains, config: c.config,
                                        seed: c.seed, seconds: o.seconds), to: j)
        }
    }
}

/// What the defend report states besides the per-example results.
struct DefendContext: Codable {
    var model: String
    var data: String
    var attacks: [String]
    var gradients: [String: String]
    var eots: [String: Int]
    var epsilon: Float
    var norm: ThreatNorm
    var steps: Int
    var eot: Int
    var restarts: Int
    var evalRuns: Int
    var judgeRuns: Int?
    /// The runs that judged each attack's points (a context saved before --judge-runs: all of them).
    var judged: Int { judgeRuns ?? evalRuns }
    var nQueries: Int
    var attackSgldSteps: Int
    var attackChains: Int?
    var config: DefenseConfig
    var seed: UInt64
}
