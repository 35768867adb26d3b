// APGDCommand.swift: `robust-eval apgd`: a single APGD attack (CE, DLR, or targeted DLR = APGD-T).
import ArgumentParser
import Attacks
import Foundation
import JEMCore

struct APGDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apgd",
        abstract: "Robust accuracy under Auto-PGD (step size adapted, no tuning): --loss ce, dlr, or --targeted for APGD-T.",
        discussion: "Defaults follow AutoAttack: 100 steps, 1 restart, step size starting at 2ε and halved at the checkpoints. Same data, model and output flags as autoattack.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @OptionGroup var threat: ThreatOptions
    @Option(name: .long, parsing: .unconditional, help: "Steps (default 100).") var steps: Int = 100
    @Option(name: .long, parsing: .unconditional, help: "Restarts (only on points still robust).") var restarts: Int = 1
    @Option(name: .long, help: "Loss: ce, dlr, or dlr-targeted (the same as --targeted: APGD-T).") var loss: APGDLoss = .ce
    @Flag(name: .long, help: "Targeted DLR over the top wrong classes (APGD-T).") var targeted = false
    @Option(name: .long, parsing: .unconditional, help: "Target classes for --targeted (default 9, at most classes − 1).") var nTargetClasses: Int?
    @Option(name: .long, parsing: .unconditional, help: "EOT draws per gradient (for randomised models).") var eot: Int = 1
    @OptionGroup var output: EnsembleOutputOptions
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        _ = try threat.epsilon()
        try Check.range(steps, 1...100_000, "--steps")
        try Check.range(restarts, 1...1000, "--restarts")
        try Check.range(eot, 1...10_000, "--eot")
        try Check.range(nTargetClasses, 1...WRNConfig.maxClasses, "--n-target-classes")
        if targeted && loss == .dlr {
            throw ValidationError("--targeted uses the targeted DLR loss, not --loss dlr: give --targeted or --loss dlr-targeted")
        }
    }

    /// APGD-T, by --targeted or --loss dlr-targeted (the same attack).
    var isTargeted: Bool { targeted || loss == .dlrTargeted }

    func run() throws {
        var c = AutoAttackConfig()
        c.version = .custom; c.norm = threat.norm; c.epsilon = try threat.epsilon()
        c.attacks = [isTargeted ? .apgdT : (loss == .dlr ? .apgdDLR : .apgdCE)]
        c.iterations = steps; c.restarts = restarts; c.targetClasses = nTargetClasses; c.eot = eot; c.seed = runtime.seed
        try runEnsemble(command: "apgd", config: c, model: model, input: input, output: output, shard: shard, runtime: runtime)
    }
}
