// AutoAttackCommand.swift: `robust-eval autoattack`: the AutoAttack ensemble (standard or rand),
// robust accuracy as the per-example worst case, with masking checks and resumable state.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

struct AutoAttackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoattack",
        abstract: "Robust accuracy under the AutoAttack ensemble (APGD-CE, APGD-T, FAB-T, Square), per-example worst case.",
        discussion: "--version standard runs APGD-CE, APGD-T (9 targets), FAB-T (9 targets), each 100 iterations, and Square with 5000 queries; each attack only on the points still robust. --version rand runs APGD-CE and APGD-DLR with EOT 20 (for randomised models). Every random choice for an image depends only on --seed and the image's index, so --threads and --batch-size do not change results.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @Option(name: .long, help: "standard (APGD-CE, APGD-T, FAB-T, Square) or rand (APGD-CE, APGD-DLR with EOT 20).") var version: AutoAttackVersion = .standard
    @Option(name: .long, help: "Comma-separated subset, in order: apgd-ce, apgd-t, fab-t, square, apgd-dlr.") var attacks: String?
    @OptionGroup var threat: ThreatOptions
    @Option(name: .long, parsing: .unconditional, help: "Iterations of APGD and FAB (default 100).") var nIter: Int = 100
    @Option(name: .long, parsing: .unconditional, help: "Square's query budget (default 5000).") var nQueries: Int = 5000
    @Flag(name: .long, help: "Stretch Square's schedule of p to the query budget, as the Square paper's code does (for budgets well below 5000; default: AutoAttack's fixed schedule).") var rescaleSchedule = false
    @Option(name: .long, parsing: .unconditional, help: "Target classes of APGD-T and FAB-T (default 9, at most classes − 1).") var nTargetClasses: Int?
    @Option(name: .long, parsing: .unconditional, help: "EOT draws per gradient (default 1 standard, 20 rand).") var eot: Int?
    @Option(name: .long, parsing: .unconditional, help: "Attack the SGLD-refinement defense with K steps around the model (reference defaults: 5 chains, σ 0.03, α 1, σ_n 0.01); use with --version rand.") var sgldSteps: Int?
    @Option(name: .long, help: "With --sgld-steps: the attack's gradient through the defense, full (exact, default) or bpda.") var gradient: DefenseGradient = .full
    @OptionGroup var judging: JudgingOptions   // with --sgld-steps
    @OptionGroup var output: EnsembleOutputOptions
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if version == .custom { throw ValidationError("--version must be standard or rand, got custom") }
        _ = try threat.epsilon()
        let list = try parseAttackList(attacks) ?? AutoAttackConfig.version(version, norm: .linf, epsilon: 1).attacks
        if rescaleSchedule && !list.contains(.square) {
            throw ValidationError("--rescale-schedule changes Square's schedule, but this run's attacks (\(list.map(\.rawValue).joined(separator: ","))) do not include square")
        }
        try Check.range(nIter, 1...100_000, "--n-iter")
        try Check.range(nQueries, 1...10_000_000, "--n-queries")
        try Check.range(nTargetClasses, 1...WRNConfig.maxClasses, "--n-target-classes")
        try Check.range(eot, 1...10_000, "--eot")
        try Check.range(sgldSteps, 0...100_000, "--sgld-steps")
        if sgldSteps == nil, let flag = judging.evalRunsFlag != nil ? "--eval-runs" : judging.judgeRunsFlag != nil ? "--judge-runs" : nil {
            throw ValidationError("\(flag) sets the SGLD defense's evaluation runs: give --sgld-steps K too")
        }
    }

    func run() throws {
        var c = AutoAttackConfig.version(version, norm: threat.norm, epsilon: try threat.epsilon())
        if let list = try parseAttackList(attacks) { c.attacks = list }
        c.iterations = nIter; c.queries = nQueries; c.targetClasses = nTargetClasses; c.seed = runtime.seed
        if rescaleSchedule { c.rescaleSchedule = true }
        if let eot { c.eot = eot }
        if let k = sgldSteps {
            let dcfg = DefenseConfig(steps: k, gradient: gradient)
            try runEnsemble(command: "autoattack", config: c, model: model, input: input, output: output, shard: shard, runtime: runtime,
                            wrap: { l in (try SGLDDefense(model: l.model, config: dcfg), dcfg.summary) }, evalRuns: judging.evalRuns, judgeRuns: judging.judgeRunsFlag)
        } else {
            try runEnsemble(command: "autoattack", config: c, model: model, input: input, output: output, shard: shard, runtime: runtime)
        }
    }
}

/// --eps for a norm: a fraction or decimal, positive, at most 1 for L∞. Default 8/255 (L∞), 0.5 (L2).
func parseEpsilon(_ s: String?, norm: ThreatNorm) throws -> Float {
    guard let s else { return norm == .linf ? 8.0 / 255 : 0.5 }
    guard let v = parseFraction(s), v.isFinite else { throw ValidationError("--eps '\(s)' is not a number (use 8/255 or 0.03)") }
    guard v > 0 else { throw ValidationError("--eps must be positive, got \(s)") }
    if norm == .linf && v > 1 { throw ValidationError("--eps \(s) is above 1 (the whole pixel range) for L∞") }
    return Float(v)
}

/// Parses --attacks; nil when not given.
func parseAttackList(_ s: String?) throws -> [AutoAttackComponent]? {
    try s.map { try parseNameList($0, as: AutoAttackComponent.self) }
}

/// Parses a comma-separated --attacks list of distinct names, in order.
func parseNameList<T: RawRepresentable & CaseIterable & Equatable>(_ s: String, as: T.Type, flag: String = "--attacks") throws -> [T] where T.RawValue == String {
    var out: [T] = []
    for n in s.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) {
        guard let a = T(rawValue: n) else {
            throw ValidationError("\(flag): unknown attack '\(n)'; expected some of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard !out.contains(a) else { throw ValidationError("\(flag) names '\(n)' twice") }
        out.append(a)
    }
    guard !out.isEmpty else { throw ValidationError("\(flag) names no attack") }
    return out
}

/// The threat model flags of autoattack, apgd, square and defend.
struct ThreatOptions: ParsableArguments {
    @Option(name: .long, help: "Threat model: linf or l2.") var norm: ThreatNorm = .linf
    @Option(name: .long, parsing: .unconditional, help: "ε, a fraction (8/255) or a decimal. Default: 8/255 (L∞), 0.5 (L2).") var eps: String?

    func validate() throws { _ = try epsilon() }

    func epsilon() throws -> Float { try parseEpsilon(eps, norm: norm) }
}
