// Eval.swift: `robust-eval eval`: clean accuracy (overall and per class) of a model on a data set
// or on saved arrays (e.g. adversarial sets from any tool).
import ArgumentParser
import Attacks
import Foundation
import JEMCore

struct EvalReport: Codable {
    var model: String
    var data: String
    var n: Int
    var accuracy: Double
    var per_class_accuracy: [Double]
    var seconds: Double
}

/// eval's per-example predictions (a shard's part, or the whole run).
struct EvalOutcome: Mergeable {
    var labels: [Int]
    var predictions: [Int]
    var seconds: Double

    static func merge(_ p: [EvalOutcome]) throws -> EvalOutcome {
        EvalOutcome(labels: joined(p.map(\.labels)), predictions: joined(p.map(\.predictions)), seconds: p.map(\.seconds).reduce(0, +))
    }
}

struct EvalContext: Codable {
    var model: String
    var data: String
    var classes: Int
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Clean accuracy (and per-class accuracy) of a model on a data set.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @Option(name: .long, help: "Write the report as JSON.") var json: String?
    @OptionGroup var shard: ShardOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws { try Check.writable(json, "--json") }

    func run() throws {
        runtime.apply()
        let l = try model.load()
        let d = try input.load(for: l)
        let plan = try shard.plan(n: d.count, json: json)
        for n in d.notes { print(n) }
        print("model: \(l.path)")
        print("data:  \(d.name), \(d.count) images")
        if let note = plan.note { print("part:  \(note)") }
        fflush(stdout)
        let t0 = Date()
        let x = d.images.rows(plan.range.lowerBound, plan.range.count), y = Array(d.labels[plan.range])
        let pred = try Evaluation.logits(l.classifier, x, batchSize: input.batchSize, seed: runtime.seed, firstIndex: plan.range.lowerBound).argmaxRows()
        let outcome = EvalOutcome(labels: y, predictions: pred, seconds: Date().timeIntervalSince(t0))
        let fp = runFingerprint(command: "eval", modelPath: l.path, data: d, settings: [:])
        guard let (c, o, _) = try plan.complete(command: "eval", fingerprint: fp, context: EvalContext(model: l.path, data: d.name, classes: d.numClasses),
                                                outcome: outcome, adversarials: nil, labels: y, json: json, saveAdversarials: nil) else { return }
        try Eval.report(c, o, json: json)
    }

    static func report(_ c: EvalContext, _ o: EvalOutcome, json: String?) throws {
        var correct = [Int](repeating: 0, count: c.classes), total = [Int](repeating: 0, count: c.classes)
        for (p, y) in zip(o.predictions, o.labels) { total[y] += 1; if p == y { correct[y] += 1 } }
        let acc = Double(correct.reduce(0, +)) / Double(max(o.labels.count, 1))
        let per = zip(correct, total).map { $1 > 0 ? Double($0) / Double($1) : 0 }
        print(String(format: "accuracy: %.2f%%  (%.1f s)", 100 * acc, o.seconds))
        print("per class: " + per.enumerated().map { String(format: "%d:%.1f%%", $0.offset, 100 * $0.element) }.joined(separator: " "))
        if let json {
            try writeJSON(EvalReport(model: c.model, data: c.data, n: o.labels.count, accuracy: acc, per_class_accuracy: per, seconds: o.seconds), to: json)
        }
    }
}
