// SquareCommand.swift: `robust-eval square`: the gradient-free Square attack (logits only).
import ArgumentParser
import Attacks
import Foundation
import JEMCore

struct SquareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "square",
        abstract: "Robust accuracy under the Square attack (score-based, no gradients: the gradient-masking control).",
        discussion: "Defaults follow AutoAttack: 5000 queries, p_init 0.8, margin loss.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var threat: ThreatOptions
    @Option(name: .long, parsing: .unconditional, help: "Query budget per image (default 5000).") var nQueries: Int = 5000
    @Option(name: .long, parsing: .unconditional, help: "Initial fraction of pixels a square covers (default 0.8).") var pInit: Float = 0.8
    @Flag(name: .long, help: "Stretch Square's schedule of p to the query budget, as the Square paper's code does (for budgets well below 5000; default: AutoAttack's fixed schedule).") var rescaleSchedule = false
    @OptionGroup var output: EnsembleOutputOptions
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        _ = try threat.epsilon()
        try Check.range(nQueries, 1...10_000_000, "--n-queries")
        guard pInit > 0, pInit <= 1 else { throw ValidationError("--p-init must be in (0, 1], got \(pInit)") }
    }

    func run() throws {
        var c = AutoAttackConfig()
        c.version = .custom; c.norm = threat.norm; c.epsilon = try threat.epsilon()
        c.attacks = [.square]; c.queries = nQueries; c.pInit = pInit; c.seed = runtime.seed
        if rescaleSchedule { c.rescaleSchedule = true }
        try runEnsemble(command: "square", config: c, model: model, input: input, output: output, shard: shard, runtime: runtime)
    }
}
