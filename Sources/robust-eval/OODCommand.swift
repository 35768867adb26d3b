// OODCommand.swift: `robust-eval ood`: AUROC, AUPR and FPR at 95 % TPR of the JEM scores for
// in-distribution data against OOD sets (any SPEC, or the built-in ones), with histograms.
import ArgumentParser
import Attacks
import Foundation
import JEMCore
import JEMRobust

struct OODSetReport: Codable {
    var name: String
    var n: Int
    var metrics: [String: DetectionMetrics]
}

struct OODReport: Codable {
    var model: String
    var data: String
    var n: Int
    var sets: [OODSetReport]
}

struct OODCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ood",
        abstract: "Out-of-distribution detection with log p(x), max p(y|x) and the approximate mass −‖∇ₓ log p(x)‖.",
        discussion: "--ood takes a data SPEC (test split) or a built-in set: uniform, gaussian, constant, permuted, flipped, interp (mean of two in-distribution images). Default: all built-in sets.")
    @OptionGroup var model: ModelOptions
    @OptionGroup var input: InputOptions
    @Option(name: .long, help: "OOD set (repeatable): a SPEC or uniform|gaussian|constant|permuted|flipped|interp.") var ood: [String] = []
    @Option(name: .long, help: "Write every AUROC/AUPR/FPR95 by score and set as JSON.") var json: String?
    @Option(name: .long, help: "Write each set's per-example scores as DIR/SET_SCORE.npy.") var scoresOut: String?
    @Option(name: .long, help: "Histogram stem: writes STEM_SCORE.svg/.png per score.") var histograms: String?
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        try Check.writable(json, "--json")
        if let h = histograms { for s in OODScore.allCases { try Check.writable("\(h)_\(s.rawValue).svg", "--histograms") } }
        if let dir = scoresOut { try Check.outputDirectory(dir, "--scores-out") }
        for o in ood where BuiltinOOD(rawValue: o) == nil { _ = try DataSpec.parse(o) }
    }

    func run() throws {
        runtime.apply()
        let l = try model.load()
        let d = try input.load(for: l)
        var rng = SeededRandom(seed: runtime.seed)
        var sets: [(String, Tensor)] = []
        for o in (ood.isEmpty ? BuiltinOOD.allCases.map(\.rawValue) : ood) {
            if let b = BuiltinOOD(rawValue: o) {
                sets.append((o, b.make(from: d.images, count: d.count, rng: &rng)))
            } else {
                var od = try DataSpec.parse(o).load(split: .test, defaultClasses: l.model.numClasses)
                if let lim = input.data.limit { od = try od.subset(offset: 0, limit: lim, shuffleSeed: nil) }
                if input.data.padTo != nil || input.data.toChannels != nil { od = try od.adapted(toChannels: input.data.toChannels, toSize: input.data.padTo) }
                guard Array(od.images.shape.dropFirst()) == Array(d.images.shape.dropFirst()) else {
                    throw ValidationError("OOD set \(o) has images of \(od.channels)×\(od.height)×\(od.width), the in-distribution set \(d.channels)×\(d.height)×\(d.width); use --pad-to / --to-channels")
                }
                sets.append((o, od.images))
            }
        }
        print("model: \(l.path)\nin-distribution: \(d.name), \(d.count) images (positive)\nOOD sets: \(sets.map { "\($0.0) (\($0.1.shape[0]))" }.joined(separator: ", "))")
        fflush(stdout)
        if let dir = scoresOut { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var inScores: [OODScore: [Float]] = [:]
        for s in OODScore.allCases {
            inScores[s] = try OOD.scores(l.model, d.images, score: s, batchSize: input.batchSize)
            if let dir = scoresOut { try NpyArray.write(try Tensor(shape: [d.count], values: inScores[s]!), to: "\(dir)/in-distribution_\(s.rawValue).npy") }
        }
        var reports: [OODSetReport] = []
        var outScores: [String: [OODScore: [Float]]] = [:]
        func pad(_ t: String, _ n: Int) -> String { t.count >= n ? t + " " : t.padding(toLength: n, withPad: " ", startingAt: 0) }
        print(pad("", 30) + OODScore.allCases.map { pad($0.rawValue + ": AUROC / AUPR / FPR95", 36) }.joined())
        for (name, x) in sets {
            var m: [String: DetectionMetrics] = [:]
            for s in OODScore.allCases {
                let sc = try OOD.scores(l.model, x, score: s, batchSize: input.batchSize)
                outScores[name, default: [:]][s] = sc
                m[s.rawValue] = OOD.metrics(inScores: inScores[s]!, outScores: sc)
                if let dir = scoresOut {
                    let safe = name.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: ":", with: "_")
                    try NpyArray.write(try Tensor(shape: [sc.count], values: sc), to: "\(dir)/\(safe)_\(s.rawValue).npy")
                }
            }
            reports.append(OODSetReport(name: name, n: x.shape[0], metrics: m))
            print(pad(name, 30) + OODScore.allCases.map { s -> String in
                let v = m[s.rawValue]!
                return pad(String(format: "%.3f / %.3f / %.3f", v.auroc, v.aupr, v.fpr_at_95_tpr), 36)
            }.joined())
        }
        if let json { try writeJSON(OODReport(model: l.path, data: d.name, n: d.count, sets: reports), to: json) }
        if let stem = histograms {
            for s in OODScore.allCases {
                let all = (inScores[s]! + sets.flatMap { outScores[$0.0]![s]! }).filter(\.isFinite)
                let lo = Double(all.min() ?? 0), hi = Double(all.max() ?? 1)
                let bins = 30, width = max((hi - lo) / Double(bins), 1e-9)
                func hist(_ v: [Float]) -> [(Double, Double)] {
                    var h = [Double](repeating: 0, count: bins)
                    for x in v where x.isFinite { h[max(0, min(Int((Double(x) - lo) / width), bins - 1))] += 1 }
                    return h.enumerated().map { (lo + (Double($0.offset) + 0.5) * width, $0.element / Double(max(v.count, 1))) }
                }
                let series = [Chart.Series(label: "in: \(d.name)", points: hist(inScores[s]!))] +
                    sets.map { Chart.Series(label: $0.0, points: hist(outScores[$0.0]![s]!)) }
                try Chart(title: "\(s.rawValue) scores, \((l.path as NSString).lastPathComponent)", xLabel: s.rawValue, yLabel: "fraction of images", series: series)
                    .write(svg: "\(stem)_\(s.rawValue).svg", png: "\(stem)_\(s.rawValue).png")
            }
        }
    }
}
