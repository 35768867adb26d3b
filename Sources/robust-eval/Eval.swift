// Eval.swift: `robust-eval eval`: clean accuracy (overall and per class) of a model on a data set
// or on saved arrays (e.g. adversarial sets from any tool).
import ArgumentParser
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

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Clean accuracy (and per-class accuracy) of a model on a data set.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @Option(name: .long, help: "Write the report as JSON.") var json: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws { try Check.writable(json, "--json") }

    func run() throws {
        runtime.apply()
        let l = try model.load()
        let m = l.model
        let d = try input.load(for: l)
        let batchSize = input.batchSize
        for n in d.notes { print(n) }
        print("model: \(l.path)")
        print("data:  \(d.name), \(d.count) images")
        fflush(stdout)
        let t0 = Date()
        let pred = try m.logits(d.images, batchSize: batchSize).argmaxRows()
        var correct = [Int](repeating: 0, count: d.numClasses), total = [Int](repeating: 0, count: d.numClasses)
        for (p, y) in zip(pred, d.labels) { total[y] += 1; if p == y { correct[y] += 1 } }
        let acc = Double(correct.reduce(0, +)) / Double(max(d.count, 1))
        let per = zip(correct, total).map { $1 > 0 ? Double($0) / Double($1) : 0 }
        let secs = Date().timeIntervalSince(t0)
        print(String(format: "accuracy: %.2f%%  (%.1f s)", 100 * acc, secs))
        print("per class: " + per.enumerated().map { String(format: "%d:%.1f%%", $0.offset, 100 * $0.element) }.joined(separator: " "))
        if let json {
            try writeJSON(EvalReport(model: l.path, data: d.name, n: d.count, accuracy: acc, per_class_accuracy: per, seconds: secs), to: json)
        }
    }
}
