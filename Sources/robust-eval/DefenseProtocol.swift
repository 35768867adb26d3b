// DefenseProtocol.swift: the attacks run on the SGLD-refinement defense, built in one place for
// `defend` and for `curve`'s defended series, so both measure the defense the same way.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

/// The attacks `defend` runs on the defense, in order (each only on the points still robust).
enum DefenseAttack: String, CaseIterable {
    /// APGD with cross-entropy / DLR, through the chain (or the attack's cheaper view of it), with EOT.
    case apgdCE = "apgd-ce", apgdDLR = "apgd-dlr"
    /// APGD-CE on the straight-through (BPDA) view, with EOT: the paper's attack, as a check.
    case bpda
    /// AutoAttack components on the bare model, their points judged through the defense.
    case transfer
    /// Square on the defense: gradient-free, the masking control.
    case square
}

/// How the attacks see the defense and which ones run: the flags `defend` and `curve` share.
struct DefenseAttackOptions: ParsableArguments {
    @Option(name: .long, help: "Attacks on a defended model, comma-separated, in order: apgd-ce, apgd-dlr, bpda, transfer, square (default: all).")
    var attacks: String?
    @Option(name: .long, parsing: .unconditional, help: "Square's query budget on the defense.") var nQueries: Int = 40
    @Option(name: .long, parsing: .unconditional, help: "K', a shorter chain the attacks differentiate instead of the defense's K steps (surrogate chain).")
    var attackSgldSteps: Int?
    @Option(name: .long, parsing: .unconditional, help: "n', chains per input in the attacks' view of the defense (default 1; the defense itself keeps --chains). The points are always judged by the full defense.")
    var attackChains: Int = 1
    @Option(name: .long, help: "The AutoAttack components of the transfer attack on the bare model (default apgd-ce,apgd-dlr at 100 iterations; 'apgd-ce,apgd-t,fab-t,square' is the standard version).")
    var transferAttacks: String = "apgd-ce,apgd-dlr"

    func attackList() throws -> [DefenseAttack] {
        guard let attacks else { return DefenseAttack.allCases }
        return try parseNameList(attacks, as: DefenseAttack.self)
    }

    func transferList() throws -> [AutoAttackComponent] { try parseNameList(transferAttacks, as: AutoAttackComponent.self, flag: "--transfer-attacks") }

    func validate() throws {
        _ = try attackList()
        _ = try transferList()
        try Check.range(nQueries, 1...10_000_000, "--n-queries")
        try Check.range(attackSgldSteps, 0...100_000, "--attack-sgld-steps")
        try Check.range(attackChains, 1...1000, "--attack-chains")
    }
}

/// The protocol for one defended model at one ε: the defense, the view the attacks craft on, the
/// components in order and how each one's gradient is described.
struct DefenseProtocol {
    var defended: SGLDDefense
    /// The defense as the gradient attacks and Square see it: the defense itself, or a cheaper
    /// view (fewer chains, a shorter chain); its points are judged by `defended`.
    var crafting: Classifier
    /// The settings of `crafting` (chains n', steps K').
    var view: DefenseConfig
    var components: [ExampleAttack]
    var gradients: [String: String]
    var eots: [String: Int]
    /// What the attacks' view is, when it is not the defense itself.
    var viewNote: String? { view == defended.config ? nil : "a view of \(view.chains) chain(s) × \(view.steps) SGLD steps" }

    /// `attack` as it runs on the defense: on the attacks' view when that is not the defense itself.
    func onView(_ name: String, _ attack: ExampleAttack) throws -> ExampleAttack {
        viewNote == nil ? attack : try Surrogate(name: name, classifier: crafting, attacks: [attack])
    }

    /// - Parameters:
    ///   - steps, restarts: the APGD attacks'; the defense's randomness is drawn `eot` times per step.
    static func build(model l: LoadedModel, defense: DefenseOptions, options: DefenseAttackOptions, sgldSteps k: Int,
                      gradient: DefenseGradient, norm: ThreatNorm, epsilon: Float, steps: Int, restarts: Int, seed: UInt64) throws -> DefenseProtocol {
        let list = try options.attackList()
        let dcfg = try defense.config(steps: k, gradient: gradient, eot: 1)
        let defended = try SGLDDefense(model: l.model, config: dcfg)
        var view = dcfg
        view.steps = min(options.attackSgldSteps ?? k, k); view.chains = min(options.attackChains, dcfg.chains)
        let surrogate = view != dcfg
        let crafting: Classifier = surrogate ? try SGLDDefense(model: l.model, config: view) : defended
        var bview = view
        bview.gradient = .bpda
        let bpdaView = try SGLDDefense(model: l.model, config: bview)

        func apgd(_ loss: APGDLoss) -> APGD {
            var c = APGDConfig()
            c.norm = norm; c.epsilon = epsilon; c.steps = steps; c.restarts = restarts; c.eot = defense.eot; c.loss = loss
            return APGD(config: c)
        }
        var p = DefenseProtocol(defended: defended, crafting: crafting, view: view, components: [], gradients: [:], eots: [:])
        let suffix = surrogate ? "; the attacks' view, points judged by the defense" : ""
        var components: [ExampleAttack] = []
        var gradients: [String: String] = [:], eots: [String: Int] = [:]
        for a in list {
            switch a {
            case .apgdCE, .apgdDLR:
                components.append(try p.onView(a.rawValue, apgd(a == .apgdCE ? .ce : .dlr)))
                gradients[a.rawValue] = crafting.gradientDescription + suffix
                eots[a.rawValue] = defense.eot
            case .bpda:
                components.append(try Surrogate(name: "bpda", classifier: bpdaView, attacks: [apgd(.ce)]))
                gradients["bpda"] = bpdaView.gradientDescription + suffix; eots["bpda"] = defense.eot
            case .transfer:
                var aa = AutoAttackConfig.version(.standard, norm: norm, epsilon: epsilon)
                aa.attacks = try options.transferList(); aa.seed = seed
                try aa.validate(classes: l.model.numClasses)
                components.append(try Surrogate(name: "transfer", classifier: l.classifier, attacks: aa.components(classes: l.model.numClasses)))
                gradients["transfer"] = "AutoAttack (\(aa.attacks.map(\.rawValue).joined(separator: ", ")); \(aa.iterations) iterations) on the bare model"
                eots["transfer"] = 1
            case .square:
                // A budget of 40 or 100 queries never leaves AutoAttack's fixed schedule's large windows
                // (p ≥ p_init/4), so p's schedule is stretched to the budget, as in the Square paper's code.
                var sq = SquareConfig(); sq.norm = norm; sq.epsilon = epsilon; sq.queries = options.nQueries; sq.rescaleSchedule = true
                try sq.validate()
                components.append(try p.onView("square", Square(config: sq)))
                gradients["square"] = "none (\(options.nQueries) queries, p's schedule stretched to them\(p.viewNote.map { "; on \($0)" } ?? ""))"; eots["square"] = 1
            }
        }
        p.components = components; p.gradients = gradients; p.eots = eots
        return p
    }
}
