// Curve.swift: `robust-eval curve`: robust accuracy against ε for models and defense settings, as
// CSV, JSON, SVG and PNG.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

struct CurveSeriesReport: Codable {
    var model: String
    var defense: String
    var gradient: String
    /// The attack protocol of this series (PGD for bare models, defend's attacks for defended ones).
    var attack: String
    var seconds: Double
    var points: [CurvePoint]
}

struct CurveReport: Codable {
    var norm: String
    var attack: PGDConfig
    var attack_summary: String
    var data: String
    var n: Int
    var seconds: Double
    var series: [CurveSeriesReport]
}

struct Curve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Robust accuracy against ε for one or more models and defense settings (CSV, JSON, SVG, PNG).",
        discussion: """
        Series are every --model × every --sgld-steps value ('none' = the bare model; K ≥ 0 = the SGLD-refinement \
        defense with K steps), plus each --series MODEL:K. Example (the paper's comparison): \
        --series baseline:none --series jem:0 --series jem:1 --series jem:10. \
        Bare models are attacked with PGD (--steps, --restarts, step/ε kept). Defended series get defend's protocol at \
        every ε: --attacks (default apgd-ce, apgd-dlr, bpda, transfer, square) with APGD of --steps steps, the exact \
        gradient through the chain (--gradient full) on the view --attack-chains/--attack-sgld-steps, EOT --eot, and \
        the defense judged --eval-runs times (default 5): robust only if correct in every run. \
        --eps takes the increasing list of ε (default L∞ 0,1/255,2/255,4/255,8/255,16/255,32/255; \
        L2 0,0.25,0.5,1,1.5,2). Without --limit, the first 500 test images are used.
        """)
    @Option(name: .long, help: "Model (repeatable): jem, baseline or a file.") var model: [String] = []
    @Option(name: .long, parsing: .unconditional, help: "Defense settings for every --model, comma-separated: none or K steps.") var sgldSteps: String = "none"
    @Option(name: .long, help: "A series MODEL:K or MODEL:none (repeatable).") var series: [String] = []
    @OptionGroup var input: InputOptions
    @OptionGroup var attack: AttackOptions
    @OptionGroup var defense: DefenseOptions
    @OptionGroup var defenseAttacks: DefenseAttackOptions
    @Option(name: .long, help: "Output stem: writes STEM.csv, STEM.json, STEM.svg and STEM.png (with --shard, the part: STEM.json).") var out: String = "curve"
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        for ext in ["csv", "json", "svg", "png"] { try Check.writable("\(out).\(ext)", "--out") }
        _ = try parseSeries()
    }

    func parseSeries() throws -> [(String, Int?)] {
        func steps(_ s: String) throws -> Int? {
            if s == "none" { return nil }
            guard let k = Int(s) else { throw ValidationError("defense setting '\(s)' is neither 'none' nor a step count") }
            guard k >= 0 else { throw ValidationError("--sgld-steps must be ≥ 0, got \(k)") }
            return k
        }
        var out: [(String, Int?)] = []
        for m in model { for s in sgldSteps.split(separator: ",") { out.append((m, try steps(String(s)))) } }
        for s in series {
            guard let i = s.lastIndex(of: ":") else { throw ValidationError("--series '\(s)' must be MODEL:K or MODEL:none") }
            out.append((String(s[..<i]), try steps(String(s[s.index(after: i)...]))))
        }
        if out.isEmpty { out = [("jem", nil)] }
        return out
    }

    func run() throws {
        runtime.apply()
        let epsText = attack.eps ?? (attack.norm == .linf ? "0,1/255,2/255,4/255,8/255,16/255,32/255" : "0,0.25,0.5,1,1.5,2")
        let epsList = try epsText.split(separator: ",").map { s -> Float in
            guard let v = parseFraction(String(s)), v >= 0 else { throw ValidationError("--eps value '\(s)' is not a non-negative number") }
            return Float(v)
        }
        for i in 1..<max(epsList.count, 1) where !(epsList[i] > epsList[i - 1]) {
            throw ValidationError("--eps values must be strictly increasing; \(epsText) is not")
        }
        if attack.norm == .linf, let m = epsList.max(), m > 1 { throw ValidationError("--eps \(m) is above 1 for L∞") }
        let template = try attack.config(epsilon: epsList.last.map { max($0, 1e-6) })
        let specs = try parseSeries()
        var inp = input
        if inp.data.limit == nil && inp.images == nil { inp.data.limit = 500 }
        var loaded: [String: LoadedModel] = [:]
        for (m, _) in specs where loaded[m] == nil { loaded[m] = try BundledModels.load(m) }
        let classes = loaded.values.first!.model.numClasses
        for (m, l) in loaded where l.model.numClasses != classes {
            throw ValidationError("--model \(m) has \(l.model.numClasses) classes, \(loaded.first!.key) \(classes): a curve compares models of one task")
        }
        let d = try inp.load(for: loaded[specs[0].0]!)
        let plan = try shard.plan(n: d.count, json: out + ".json")
        print("data:    \(d.name), \(d.count) images")
        if let note = plan.note { print("part:    \(note)") }
        print("attack:  \(template.summary) at ε = \(epsText)")
        let gradient = defense.gradientFlag ?? .full, evalRuns = defense.evalRuns, judgeRuns = defense.judgeRuns
        let defendedSummary = "defend's protocol: \(try defenseAttacks.attackList().map(\.rawValue).joined(separator: ", ")); APGD \(attack.steps) steps, \(attack.restarts) restart(s), gradient \(gradient.rawValue), EOT \(defense.eot), view \(defenseAttacks.attackChains) chain(s)\(defenseAttacks.attackSgldSteps.map { " × \($0) steps" } ?? ""), transfer \(defenseAttacks.transferAttacks), Square \(defenseAttacks.nQueries) queries, \(evalRuns) evaluation runs (each attack's points judged by \(judgeRuns))"
        print("series:  \(specs.map { "\($0.0)\($0.1.map { ":SGLD-\($0)" } ?? "")" }.joined(separator: ", "))")
        if specs.contains(where: { $0.1 != nil }) { print("defended series: \(defendedSummary)") }
        fflush(stdout)
        let x = d.images.rows(plan.range.lowerBound, plan.range.count), y = Array(d.labels[plan.range])
        var context = CurveContext(norm: attack.norm, template: template, epsilons: epsList, data: d.name, n: d.count, series: [],
                                   defended: specs.contains { $0.1 != nil }, gradient: gradient, eot: defense.eot)
        var outcome = CurveOutcome(robust: [], seriesSeconds: [], seconds: 0)
        for (name, k) in specs {
            let lm = loaded[name]!
            let label = k.map { "\(name) + SGLD-\($0)" } ?? name
            let ts = Date()
            let prog = Progress(total: epsList.count, label: label)
            let robust: [[Bool]]
            let description: String, gradientText: String, attackText: String
            if let k {
                let proto = try DefenseProtocol.build(model: lm, defense: defense, options: defenseAttacks, sgldSteps: k, gradient: gradient,
                                                      norm: attack.norm, epsilon: max(epsList.last ?? 0, 1e-6), steps: attack.steps,
                                                      restarts: attack.restarts, seed: runtime.seed)
                description = "SGLD-\(k): \(proto.defended.config.summary)"
                gradientText = proto.gradients["apgd-ce"] ?? proto.gradients["apgd-dlr"] ?? proto.crafting.gradientDescription
                attackText = defendedSummary
                // Defend's protocol at every ε on the examples still robust; ε = 0 only evaluates (every run).
                robust = try RobustnessCurve.perExample(epsilons: epsList, count: y.count, progress: { prog.update($0) }) { kε, e, alive in
                    let p = e > 0 ? try DefenseProtocol.build(model: lm, defense: defense, options: defenseAttacks, sgldSteps: k, gradient: gradient,
                                                              norm: attack.norm, epsilon: e, steps: attack.steps, restarts: attack.restarts,
                                                              seed: runtime.seed &+ UInt64(kε)) : proto
                    var rc = AutoAttackConfig(); rc.seed = runtime.seed &+ UInt64(kε); rc.norm = attack.norm; rc.epsilon = e
                    let runner = try AutoAttackRunner(model: p.defended, config: rc, images: x.gather(rows: alive), labels: alive.map { y[$0] },
                                                      batchSize: input.batchSize, evalRuns: evalRuns, judgeRuns: judgeRuns,
                                                      components: e > 0 ? p.components : [],
                                                      indices: alive.map { plan.indices[$0] }, fingerprint: [:])
                    let r = try runShowingProgress(runner, prefix: "\(label) ε=\(String(format: "%.4g", e)) ")
                    return (0..<r.n).map { r.cleanPredictions[$0] == r.labels[$0] && r.brokenBy[$0] == nil }
                }
            } else {
                description = "none"; gradientText = lm.classifier.gradientDescription; attackText = template.summary + " (step/ε kept)"
                robust = try RobustnessCurve.perExample(lm.classifier, epsilons: epsList, template: template, images: x, labels: y, indices: plan.indices,
                                                        batchSize: input.batchSize, seed: runtime.seed) { prog.update($0) }
            }
            prog.finish()
            outcome.robust.append(robust)
            outcome.seriesSeconds.append(Date().timeIntervalSince(ts))
            outcome.seconds += outcome.seriesSeconds.last!
            context.series.append(CurveContext.Series(model: name, label: label, defense: description, gradient: gradientText, attack: attackText))
        }
        var fp = runFingerprint(command: "curve", modelPath: loaded[specs[0].0]!.path, data: d,
                                settings: ["seed": String(runtime.seed), "attack": settingsJSON(template), "eps": epsText,
                                           "series": specs.map { "\($0.0):\($0.1.map(String.init) ?? "none")" }.joined(separator: ","),
                                           "defense": "\(gradient.rawValue),eot \(defense.eot),runs \(evalRuns)/\(judgeRuns),\(defense.chains),\(defense.initNoise),\(defense.sgldStepSize),\(defense.sgldNoise)",
                                           "defense_attacks": defendedSummary])
        for (m, l) in loaded { if let b = FileManager.default.contents(atPath: l.path) { fp["model_hash:" + m] = b.withUnsafeBytes(fnv1a) } }
        guard let (c, o, _) = try plan.complete(command: "curve", fingerprint: fp, context: context, outcome: outcome, adversarials: nil,
                                                labels: y, json: out + ".json", saveAdversarials: nil) else { return }
        try Curve.report(c, o, out: out)
    }

    /// The curve files (all four or none) and the summary lines.
    static func report(_ c: CurveContext, _ o: CurveOutcome, out: String) throws {
        let secs = o.seconds
        var reports: [CurveSeriesReport] = []
        for (k, sr) in c.series.enumerated() {
            let pts = RobustnessCurve.points(o.robust[k], epsilons: c.epsilons)
            reports.append(CurveSeriesReport(model: sr.model, defense: sr.defense, gradient: sr.gradient, attack: sr.attack ?? c.template.summary,
                                             seconds: o.seriesSeconds[k], points: pts))
            print(sr.label + String(format: " (%.0f s): ", o.seriesSeconds[k]) + pts.map { String(format: "ε=%.4f %.1f%%", $0.eps, 100 * $0.accuracy) }.joined(separator: ", "))
        }
        let template = c.template
        let report = CurveReport(norm: c.norm.rawValue, attack: template, attack_summary: template.summary, data: c.data, n: c.n, seconds: secs, series: reports)
        var csv = "model,defense,norm,eps,accuracy,n,attacked,attack\n"
        for r in reports {
            for p in r.points {
                csv += "\(r.model),\"\(r.defense)\",\(c.norm.rawValue),\(p.eps),\(p.accuracy),\(p.n),\(p.attacked),\"\(r.attack.replacingOccurrences(of: "\"", with: "'")); gradient \(r.gradient)\"\n"
            }
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try enc.encode(report)
        let linf = c.norm == .linf
        // The gradient through the defense concerns the SGLD series only; the title says so.
        let chart = Chart(title: "\(linf ? "L∞" : "L2") PGD-\(template.steps)\(template.restarts > 1 ? " ×\(template.restarts) restarts" : "")\(c.defended ? "; SGLD series: defend's attacks, \(c.gradient == .bpda ? "BPDA" : "full-chain gradient")\(c.eot > 1 ? "+EOT \(c.eot)" : ""), worst case over runs" : ""), \(c.data), n = \(c.n)",
                          xLabel: linf ? "ε × 255 (L∞)" : "ε (L2)", yLabel: "robust accuracy",
                          series: reports.map { r in Chart.Series(label: r.defense == "none" ? r.model : "\(r.model) SGLD-\(r.defense.split(separator: ":")[0].dropFirst(5))",
                                                                  points: r.points.map { ($0.eps * (linf ? 255 : 1), $0.accuracy) }) },
                          yRange: (0, 1))
        // All four files or none.
        try AtomicFile.group { g in
            try g.write(csv, to: out + ".csv")
            try g.write(json, to: out + ".json")
            try chart.stage(in: g, svg: out + ".svg", png: out + ".png")
        }
        print(String(format: "%d series × %d ε on %d images in %.0f s → %@.{csv,json,svg,png}", reports.count, c.epsilons.count, c.n, secs, out as NSString))
    }
}

/// Per series, per ε, which examples are robust (a shard's part, or the whole run).
struct CurveOutcome: Mergeable {
    var robust: [[[Bool]]]
    var seriesSeconds: [Double]
    var seconds: Double

    static func merge(_ p: [CurveOutcome]) throws -> CurveOutcome {
        guard p.allSatisfy({ $0.robust.count == p[0].robust.count && zip($0.robust, p[0].robust).allSatisfy { $0.count == $1.count } }) else {
            throw ValidationError("merge: the parts ran different series or ε lists")
        }
        let robust = p[0].robust.indices.map { s in p[0].robust[s].indices.map { k in joined(p.map { $0.robust[s][k] }) } }
        return CurveOutcome(robust: robust, seriesSeconds: p[0].seriesSeconds.indices.map { s in p.map { $0.seriesSeconds[s] }.reduce(0, +) },
                            seconds: p.map(\.seconds).reduce(0, +))
    }
}

struct CurveContext: Codable {
    struct Series: Codable { var model: String; var label: String; var defense: String; var gradient: String; var attack: String? }
    var norm: ThreatNorm
    var template: PGDConfig
    var epsilons: [Float]
    var data: String
    var n: Int
    var series: [Series]
    var defended: Bool
    var gradient: DefenseGradient
    var eot: Int
}
