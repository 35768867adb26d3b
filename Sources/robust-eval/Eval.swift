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
    @OptionGroup var data: DataOptions
    @Option(name: .long, help: "Images .npy instead of --data.") var images: String?
    @Option(name: .long, help: "Labels .npy for --images.") var labels: String?
    @Option(name: .long, parsing: .unconditional, help: "Batch size.") var batchSize: Int = 256
    @Option(name: .long, help: "Write the report as JSON.") var json: String?
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        runtime.apply()
        let l = try model.load()
        let m = l.model
        let d: Dataset
        if let images {
            guard let labels else { throw ValidationError("--images needs --labels to measure accuracy") }
            d = try NpyImages.load(images: images, labels: labels, layout: data.layout.flatMap { NpyLayout(rawValue: $0) }, defaultClasses: m.numClasses)
        } else {
            d = try adaptToModel(try data.load(defaultClasses: m.numClasses), metadata: l.metadata, padTo: data.padTo, toChannels: data.toChannels)
        }
        guard d.numClasses == m.numClasses else {
            throw ValidationError("\(d.name) has \(d.numClasses) classes but the model \(l.path) has \(m.numClasses)")
        }
        let t0 = Date()
        let pred = try m.logits(d.images, batchSize: batchSize).argmaxRows()
        var correct = [Int](repeating: 0, count: d.numClasses), total = [Int](repeating: 0, count: d.numClasses)
        for (p, y) in zip(pred, d.labels) { total[y] += 1; if p == y { correct[y] += 1 } }
        let acc = Double(correct.reduce(0, +)) / Double(max(d.count, 1))
        let per = zip(correct, total).map { $1 > 0 ? Double($0) / Double($1) : 0 }
        let secs = Date().timeIntervalSince(t0)
        for n in d.notes { print(n) }
        print("model: \(l.path)")
        print("data:  \(d.name), \(d.count) images")
        print(String(format: "accuracy: %.2f%%  (%.1f s)", 100 * acc, secs))
        print("per class: " + per.enumerated().map { String(format: "%d:%.1f%%", $0.offset, 100 * $0.element) }.joined(separator: " "))
        if let json {
            try writeJSON(EvalReport(model: l.path, data: d.name, n: d.count, accuracy: acc, per_class_accuracy: per, seconds: secs), to: json)
        }
    }
}
