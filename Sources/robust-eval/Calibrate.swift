// Calibrate.swift: `robust-eval calibrate`: ECE, MCE, NLL and the reliability diagram, optionally
// with the SGLD refinement of the defense applied first.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Calibration: expected and maximum calibration error, NLL, reliability diagram.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @Option(name: .long, parsing: .unconditional, help: "Equal-width confidence bins (reference 20).") var bins: Int = 20
    @Option(name: .long, help: "Apply K SGLD refinement steps (the defense) before classifying; 'none' for the bare model.") var refine: String = "none"
    @OptionGroup var defense: DefenseOptions
    @Option(name: .long, help: "Write the report (accuracy, ece, mce, nll, bins) as JSON.") var json: String?
    @Option(name: .long, help: "Reliability diagram stem: writes STEM.svg and STEM.png.") var diagram: String?
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        try Check.range(bins, 1...10_000, "--bins")
        if refine != "none" {
            guard let k = Int(refine), (0...100_000).contains(k) else { throw ValidationError("--refine must be 'none' or a step count in 0...100000, got '\(refine)'") }
        }
        try Check.writable(json, "--json")
        try Check.writable(diagram.map { $0 + ".svg" }, "--diagram")
        try Check.writable(diagram.map { $0 + ".png" }, "--diagram")
    }

    func run() throws {
        runtime.apply()
        let l = try model.load()
        let d = try input.load(for: l)
        let plan = try shard.plan(n: d.count, json: json)
        var clf: Classifier = l.classifier
        var label = "bare model"
        if refine != "none" {
            guard let k = Int(refine), k >= 0 else { throw ValidationError("--refine must be 'none' or a step count ≥ 0, got '\(refine)'") }
            let def = try SGLDDefense(model: l.model, config: try defense.config(steps: k))
            clf = def; label = "SGLD-\(k) refinement: \(def.config.summary)"
        }
        print("model: \(l.path)\ndata:  \(d.name), \(d.count) images\ninput: \(label)")
        if let note = plan.note { print("part:  \(note)") }
        fflush(stdout)
        let t0 = Date()
        let x = d.images.rows(plan.range.lowerBound, plan.range.count), y = Array(d.labels[plan.range])
        let z = try Evaluation.logits(clf, x, batchSize: input.batchSize, seed: runtime.seed, firstIndex: plan.range.lowerBound)
        let outcome = LogitsOutcome(labels: y, classes: z.shape[1], logits: z.array, seconds: Date().timeIntervalSince(t0))
        let fp = runFingerprint(command: "calibrate", modelPath: l.path, data: d,
                                settings: ["seed": String(runtime.seed), "input": label, "bins": String(bins)])
        let context = CalibrateContext(model: l.path, data: d.name, bins: bins)
        guard let (c, o, _) = try plan.complete(command: "calibrate", fingerprint: fp, context: context, outcome: outcome,
                                                adversarials: nil, labels: y, json: json, saveAdversarials: nil) else { return }
        try Calibrate.report(c, o, json: json, diagram: diagram)
    }

    static func report(_ c: CalibrateContext, _ o: LogitsOutcome, json: String?, diagram: String?) throws {
        let z = try Tensor(shape: [o.labels.count, o.classes], values: o.logits)
        let r = try Calibration.report(probabilities: Losses.softmax(z), labels: o.labels, bins: c.bins)
        print(String(format: "accuracy %.2f%%  ECE %.2f%%  MCE %.2f%%  NLL %.4f  (%d bins)", 100 * r.accuracy, 100 * r.ece, 100 * r.mce, r.nll, c.bins))
        if let json { try writeJSON(r, to: json) }
        if let diagram {
            let name = (c.model as NSString).lastPathComponent
            try Calibration.diagram(r, title: String(format: "%@: ECE %.2f%%, %@", name, 100 * r.ece, c.data)).write(svg: diagram + ".svg", png: diagram + ".png")
        }
    }
}

/// Per-example logits (calibrate's part, or the whole run).
struct LogitsOutcome: Mergeable {
    var labels: [Int]
    var classes: Int
    var logits: [Float]
    var seconds: Double

    static func merge(_ p: [LogitsOutcome]) throws -> LogitsOutcome {
        guard p.allSatisfy({ $0.classes == p[0].classes }) else { throw ValidationError("merge: the parts have different class counts") }
        return LogitsOutcome(labels: joined(p.map(\.labels)), classes: p[0].classes, logits: joined(p.map(\.logits)), seconds: p.map(\.seconds).reduce(0, +))
    }
}

struct CalibrateContext: Codable {
    var model: String
    var data: String
    var bins: Int
}
