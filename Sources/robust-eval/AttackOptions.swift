// AttackOptions.swift: the flags of PGD-style attacks, shared by pgd, transfer, defend and curve,
// and the input selection (--data or --images/--labels) and report outputs they share.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

extension ThreatNorm: ExpressibleByArgument {}
extension AttackLoss: ExpressibleByArgument {}

struct AttackOptions: ParsableArguments {
    @Option(name: .long, help: "Threat model: linf or l2.") var norm: ThreatNorm = .linf
    @Option(name: .long, parsing: .unconditional, help: "ε, a fraction (8/255) or a decimal. Default: 8/255 (L∞), 0.5 (L2).") var eps: String?
    @Option(name: .long, parsing: .unconditional, help: "PGD steps (default 10).") var steps: Int = 10
    @Option(name: .long, parsing: .unconditional, help: "Step size, absolute (2/255) or relative to ε ('0.25eps'). Default: ε/4 for L∞ (2/255 at 8/255), 2.5·ε/steps for L2.") var stepSize: String?
    @Option(name: .long, parsing: .unconditional, help: "Restarts; an example is broken if any restart breaks it.") var restarts: Int = 1
    @Flag(name: .long, help: "Start at x instead of a random point in the ε-ball.") var noRandomStart = false
    @Flag(name: .long, help: "Targeted attack towards a random wrong class per example (seeded).") var targeted = false
    @Option(name: .long, help: "Loss: ce (cross-entropy) or margin (CW).") var loss: AttackLoss = .ce
    @Flag(name: .long, help: "Stop attacking examples already broken.") var earlyStop = false

    func parseEps() throws -> Float {
        guard let s = eps else { return norm == .linf ? 8.0 / 255 : 0.5 }
        guard let v = parseFraction(s), v.isFinite else { throw ValidationError("--eps '\(s)' is not a number (use 8/255 or 0.03)") }
        guard v >= 0 else { throw ValidationError("--eps must be non-negative, got \(s)") }
        if norm == .linf && v > 1 { throw ValidationError("--eps \(s) is above 1 (the whole pixel range) for L∞") }
        return Float(v)
    }

    func validate() throws {
        try Check.range(steps, 1...100_000, "--steps")
        try Check.range(restarts, 1...1000, "--restarts")
        // curve takes a list of ε and checks it itself; the step size is checked against its largest.
        _ = try config(epsilon: eps?.contains(",") == true ? 1 : nil)
    }

    func config(epsilon: Float? = nil) throws -> PGDConfig {
        var c = PGDConfig()
        c.norm = norm
        c.epsilon = try epsilon ?? parseEps()
        guard steps >= 1 else { throw ValidationError("--steps must be ≥ 1 for PGD, got \(steps)") }
        guard restarts >= 1 else { throw ValidationError("--restarts must be ≥ 1, got \(restarts)") }
        c.steps = steps; c.restarts = restarts; c.randomStart = !noRandomStart; c.targeted = targeted
        c.loss = loss; c.earlyStop = earlyStop
        if let s = stepSize {
            if s.hasSuffix("eps") {
                guard let f = parseFraction(String(s.dropLast(3))) ?? (s == "eps" ? 1 : nil), f > 0, f.isFinite else { throw ValidationError("--step-size '\(s)' is not a positive number times eps") }
                c.stepSize = Float(f) * c.epsilon
            } else {
                guard let v = parseFraction(s), v > 0, v.isFinite else { throw ValidationError("--step-size '\(s)' is not a positive number") }
                c.stepSize = Float(v)
            }
        } else {
            c.stepSize = PGDConfig.defaultStepSize(norm: norm, epsilon: c.epsilon, steps: steps)
        }
        try c.validate()
        return c
    }
}

struct InputOptions: ParsableArguments {
    @OptionGroup var data: DataOptions
    @Option(name: .long, help: "Images .npy instead of --data (N×C×H×W or N×H×W×C, in [0,1] or uint8).") var images: String?
    @Option(name: .long, help: "Labels .npy for --images.") var labels: String?
    @Option(name: .long, parsing: .unconditional, help: "Batch size.") var batchSize: Int = 128

    /// Loads the images; a model's metadata `pad_to` / `to_channels` (written by `train`) adapt the
    /// data unless --pad-to / --to-channels are given.
    func load(for model: LoadedModel) throws -> Dataset {
        try load(classes: model.model.numClasses, metadata: model.metadata, checkSize: model)
    }

    func load(classes: Int, metadata: [String: String] = [:], checkSize model: LoadedModel? = nil) throws -> Dataset {
        try validateFlags()
        var d: Dataset
        if let images {
            guard let labels else { throw ValidationError("--images needs --labels") }
            d = try NpyImages.load(images: images, labels: labels, layout: data.layout.flatMap { NpyLayout(rawValue: $0) }, defaultClasses: classes)
            if data.limit != nil || data.offset > 0 { d = try d.subset(offset: data.offset, limit: data.limit, shuffleSeed: data.shuffle) }
        } else {
            d = try data.load(defaultClasses: classes)
        }
        guard d.numClasses == classes else {
            throw ValidationError("\(d.name) has \(d.numClasses) classes but the model has \(classes)")
        }
        d = try adaptToModel(d, metadata: metadata, padTo: data.padTo, toChannels: data.toChannels)
        if let model { try ModelIO.checkImageSize(d, for: model, allowAnySize: data.allowAnySize) }
        return d
    }

    func validate() throws { try validateFlags() }

    func validateFlags() throws {
        try data.validateFlags()
        guard batchSize >= 1, batchSize <= maxBatchSize else { throw ValidationError("--batch-size must be in 1...\(maxBatchSize), got \(batchSize)") }
        if labels != nil && images == nil { throw ValidationError("--labels needs --images (the labels of which images?)") }
        if images != nil && data.data != "fashion-mnist" { throw ValidationError("--images and --data both give the input; use one") }
    }
}

/// Applies the model's stated input adaptation (metadata `pad_to`, `to_channels`) where the command
/// line did not set one.
func adaptToModel(_ d: Dataset, metadata: [String: String], padTo: Int?, toChannels: Int?) throws -> Dataset {
    let p = padTo == nil ? metadata["pad_to"].flatMap { Int($0) } : nil
    let c = toChannels == nil ? metadata["to_channels"].flatMap { Int($0) } : nil
    if p == nil && c == nil { return d }
    return try d.adapted(toChannels: c, toSize: p)
}

struct OutputOptions: ParsableArguments {
    @Option(name: .long, help: "Write the report as JSON.") var json: String?
    @Option(name: .long, help: "Write per-example results as CSV (index,label,clean_prediction,adversarial_prediction,perturbation_norm).") var perExample: String?
    @Option(name: .long, help: "Save the adversarial examples, float32 N×C×H×W .npy in [0,1], input order.") var saveAdversarials: String?

    func validate() throws {
        try Check.writable(json, "--json")
        try Check.writable(perExample, "--per-example")
        try Check.writable(saveAdversarials, "--save-adversarials")
        try Check.writable(saveAdversarials.map(adversarialLabelsPath), "--save-adversarials (labels)")
    }

    func writePerExample(_ r: RobustnessResult) throws {
        guard let perExample else { return }
        var s = "index,label,clean_prediction,adversarial_prediction,perturbation_norm\n"
        for i in 0..<r.n {
            s += "\(i),\(r.labels[i]),\(r.cleanPredictions[i]),\(r.adversarialPredictions[i]),\(r.perturbationNorms[i])\n"
        }
        try AtomicFile.write(s, to: perExample)
    }
}

struct AttackReport: Codable {
    var command: String
    var model: String
    var data: String
    var n: Int
    var clean_accuracy: Double
    var robust_accuracy: Double
    var attack: PGDConfig
    var attack_summary: String
    var gradient: String
    var eval_runs: Int?
    var seed: UInt64
    var seconds: Double
    var images_per_second_per_step: Double
    var defense: String?
    var transfer_source: String?
    var transfer_rate: Double?
    var transfer_robust_accuracy: Double?
    var defense_config: DefenseConfig?
}

/// Where the labels of a saved adversarial set go: ADV.labels.npy beside ADV.npy.
func adversarialLabelsPath(_ p: String) -> String { p.hasSuffix(".npy") ? String(p.dropLast(4)) + ".labels.npy" : p + ".labels.npy" }

/// Writes an adversarial set and its labels (for `eval --images ADV.npy --labels ADV.labels.npy`),
/// both or neither.
func writeAdversarials(_ x: Tensor, labels: [Int], to p: String) throws {
    try AtomicFile.group { g in
        try g.write(NpyArray.encode(x), to: p)
        try g.write(NpyArray.encode(labels), to: adversarialLabelsPath(p))
    }
}
